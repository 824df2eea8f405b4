// The live channel view: tails /live/events (server-sent events) into the page.
(function () {
  var root = document.getElementById('live');
  if (!root || !window.EventSource) return;
  var query = root.getAttribute('data-query');
  var several = root.getAttribute('data-several') === 'yes';
  var list = document.getElementById('live-messages');
  var state = document.getElementById('live-state');
  var rateEl = document.getElementById('live-rate');
  var countEl = document.getElementById('live-count');
  var sourcesEl = document.getElementById('live-sources');
  var accessEl = document.getElementById('live-access');
  // Whose data reaches the view, per channel (null until the first word of it).
  var access = {};
  var paused = false, count = 0, recent = [], sources = {};
  var MAX_SHOWN = 200;

  function setState(text, cls) { state.textContent = text; state.className = 'badge ' + (cls || ''); }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }

  function renderSources() {
    sourcesEl.textContent = '';
    Object.keys(sources).sort().forEach(function (ident) {
      sourcesEl.appendChild(el('li', '', ident + ' · ' + sources[ident]));
    });
  }

  // A key as people know it: its owner's name, with the ident it used.
  function who(m) { return m.owner ? m.owner + ' (key ' + m.ident + ')' : m.ident; }

  // The site speaks UTC everywhere; so does the live view.
  function utcTime() { return new Date().toISOString().slice(11, 19) + ' UTC'; }

  function show(m) {
    var li = el('li', 'message');
    var head = el('header', '', utcTime() + (several ? ' · ' + m.channel : '') + ' · from ' + who(m) + ' · ' + m.size + ' bytes · ' + m.encoding + (m.truncated ? ' (cut)' : ''));
    li.appendChild(head);
    if (m.encoding === 'binary') {
      li.appendChild(el('pre', '', 'hex    ' + m.hex + '\nbase64 ' + m.base64));
    } else {
      li.appendChild(el('pre', '', m.text));
    }
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_SHOWN) list.removeChild(list.lastChild);
  }

  var source = new EventSource('/live/events?' + query);
  source.addEventListener('ready', function (e) {
    var d = JSON.parse(e.data);
    setState('live · key ' + d.ident, 'ok');
  });
  // Whose data may reach this view, by user, per channel; sent at start and whenever a
  // share changes.
  function renderAccess() {
    var parts = Object.keys(access).sort().map(function (c) {
      var list = access[c].length ? access[c].join(', ') : 'nobody now';
      return several ? 'on ' + c + ': ' + list : list;
    });
    accessEl.textContent = 'Whose data reaches you here: ' + parts.join(' · ');
  }
  source.addEventListener('access', function (e) {
    var d = JSON.parse(e.data);
    var now = d.everyone ? ['everyone'] : d.sources;
    var before = access[d.channel];
    access[d.channel] = now;
    renderAccess();
    if (before !== undefined) {
      var gone = before.filter(function (u) { return now.indexOf(u) < 0; });
      var added = now.filter(function (u) { return before.indexOf(u) < 0; });
      var text = 'Access changed at ' + utcTime() + (several ? ' on ' + d.channel : '') + ':' +
        (gone.length ? ' no longer from ' + gone.join(', ') + '.' : '') +
        (added.length ? ' now also from ' + added.join(', ') + '.' : '');
      list.insertBefore(el('li', 'message notice', text), list.firstChild);
      // The per-key counts start again: a key of a user no longer listed sends nothing more.
      sources = {};
      renderSources();
      var any = Object.keys(access).some(function (c) { return access[c].length; });
      setState(any ? 'live · access changed' : 'live · nothing reaches you now', any ? 'ok' : 'warn');
    }
  });
  source.addEventListener('message', function (e) {
    var m = JSON.parse(e.data);
    count += 1; recent.push(Date.now());
    sources[who(m)] = (sources[who(m)] || 0) + 1;
    countEl.textContent = String(count);
    renderSources();
    if (!paused) show(m);
  });
  source.addEventListener('error', function (e) {
    if (e.data) {
      var d = JSON.parse(e.data);
      var li = el('li', 'message error', 'The broker says: ' + d.message);
      list.insertBefore(li, list.firstChild);
      setState('cut off', 'warn');
      source.close();
    } else if (source.readyState === EventSource.CONNECTING) {
      setState('reconnecting…', 'warn');
    }
  });
  setInterval(function () {
    var now = Date.now();
    recent = recent.filter(function (t) { return now - t < 10000; });
    rateEl.textContent = (recent.length / 10).toFixed(1);
  }, 1000);
  document.getElementById('live-pause').addEventListener('click', function (ev) {
    paused = !paused; ev.target.textContent = paused ? 'Resume' : 'Pause';
  });
  document.getElementById('live-clear').addEventListener('click', function () { list.textContent = ''; });
})();
