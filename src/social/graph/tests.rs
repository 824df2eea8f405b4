use std::sync::Mutex;

use super::*;
use crate::domain::ShareId;
use crate::domain::model::ShareKind;
use crate::social::ops::{self, GranteeName};
use crate::wire::{Channel, Ident};

/// Collects what the SocialGraph tells the broker and, when a test asks by setting
/// `watch`, whether the CLI would hear that version is live as each message arrives.
struct Collector {
    told: Arc<Mutex<Vec<Vec<Ident>>>>,
    watch: Arc<Mutex<Option<(Store, i64)>>>,
    live_at: Arc<Mutex<Vec<bool>>>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<AclChanged> for Collector {
    type Result = ();
    fn handle(&mut self, msg: AclChanged, _: &mut Context<Self>) {
        self.told.lock().unwrap().push(msg.idents);
        if let Some((store, version)) = &*self.watch.lock().unwrap() {
            let live = store.wait_applied_at(*version, Duration::ZERO).unwrap();
            let live = matches!(live, crate::store::models::applied::Live::Applied { .. });
            self.live_at.lock().unwrap().push(live);
        }
    }
}

/// What a test's graph actor runs with: its users, the table sessions read, and what
/// the broker was told (the idents of each `AclChanged`).
struct Started {
    users: Vec<crate::domain::listing::User>,
    graph: actix::Addr<SocialGraph>,
    keys: Arc<ArcSwap<KeyTable>>,
    told: Arc<Mutex<Vec<Vec<Ident>>>>,
    /// See [`Collector`].
    watch: Arc<Mutex<Option<(Store, i64)>>>,
    live_at: Arc<Mutex<Vec<bool>>>,
}

/// Users named `names`, each `(user, ident, publish, subscribe)` key, and a graph actor
/// that never polls: only operations (and what they trigger) read the change log; a
/// change read from the log is derived a key at a time (a slice that ends at once).
fn start(store: &Store, names: &[&str], keys: &[(usize, &str, &str, &str)]) -> Started {
    let ch = |s: &str| Channel::new(s).unwrap();
    let users: Vec<_> = names
        .iter()
        .map(|n| store.add_user(n, &format!("{n}@x.org"), "t").unwrap())
        .collect();
    for (u, ident, publish, subscribe) in keys {
        let id = Some(Ident::new(ident).unwrap());
        ops::create_key(
            store,
            &users[*u],
            id,
            None,
            vec![ch(publish)],
            vec![ch(subscribe)],
            String::new(),
        )
        .unwrap();
    }
    let (version, graph) = store.load_graph_versioned().unwrap();
    let live = LiveGraph::new(graph, crate::domain::acl::Mode::Social);
    let table = Arc::new(ArcSwap::from_pointee(live.table().clone()));
    let told = Arc::new(Mutex::new(Vec::new()));
    let (watch, live_at) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(Vec::new())));
    let broker = Collector {
        told: Arc::clone(&told),
        watch: Arc::clone(&watch),
        live_at: Arc::clone(&live_at),
    }
    .start();
    let graph = SocialGraph::new(
        store.clone(),
        live,
        version,
        Arc::clone(&table),
        broker.recipient(),
        Duration::from_secs(3600),
    )
    .with_slice(Duration::ZERO)
    .start();
    Started {
        users,
        graph,
        keys: table,
        told,
        watch,
        live_at,
    }
}

/// An accepted share of `users[from]`'s `on` with `users[to]`, as an operation: committed
/// beside the server when called with the store (as the CLI does), or through [`Apply`].
fn accepted(
    users: &[crate::domain::listing::User],
    from: usize,
    on: &str,
    to: usize,
) -> impl FnOnce(&Store) -> Result<ShareId, SocialError> + Send + use<> {
    let (from, to) = (users[from].id, users[to].id);
    let c = Channel::new(on).unwrap();
    move |s: &Store| {
        s.add_share(
            from,
            &c,
            crate::domain::model::Grantee::User(to),
            (ShareKind::Own, false),
            crate::domain::model::ShareState::Accepted,
            "t",
        )
        .map_err(SocialError::from)
    }
}

#[actix_rt::test]
async fn applied_changes_reach_exactly_the_keys_they_change() {
    let db = crate::store::scratch::ScratchDb::new().unwrap();
    let store = Store::open(db.url()).unwrap();
    let ch = |s: &str| Channel::new(s).unwrap();
    let Started {
        users,
        graph,
        keys,
        told: seen,
        ..
    } = start(
        &store,
        &["a", "b", "c"],
        &[(0, "ka", "x", "x"), (1, "kb", "x", "x"), (2, "kc", "y", "y")],
    );

    let a = users[0].clone();
    let (offered, live): (ShareId, _) = graph
        .send(Apply(Box::new(move |s: &Store| {
            ops::offer_share(
                s,
                &a,
                &ch("x"),
                &GranteeName::User("b".into()),
                ShareKind::Own,
                false,
            )
        })))
        .await
        .unwrap()
        .unwrap();
    // Standalone: live here, nobody else to ask.
    assert!(live.is_live());
    assert_eq!(live.applied_on.len(), 1);
    let b = users[1].clone();
    graph
        .send(Apply(Box::new(move |s: &Store| {
            ops::answer_share(s, &b, offered, true)
        })))
        .await
        .unwrap()
        .unwrap();
    // A refused operation changes nothing (a stranger to the share is told it is not there).
    let c = users[2].clone();
    let refused = graph
        .send(Apply(Box::new(move |s: &Store| {
            ops::revoke_share(s, &c, offered)
        })))
        .await
        .unwrap();
    assert!(matches!(refused, Err(SocialError::NotFound(_))));

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no AclChanged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The offer alone changed nothing; the acceptance changed kb only (not ka, not kc).
    assert_eq!(*seen.lock().unwrap(), vec![vec![Ident::new("kb").unwrap()]]);
    assert!(keys.load()["kb"].sources("x").unwrap().admits(users[0].id));
}

#[actix_rt::test]
async fn an_operation_goes_live_ahead_of_a_change_committed_elsewhere_just_before_it() {
    let db = crate::store::scratch::ScratchDb::new().unwrap();
    let store = Store::open(db.url()).unwrap();
    let Started {
        users,
        graph,
        keys,
        told: seen,
        ..
    } = start(
        &store,
        &["a", "b", "c", "d"],
        &[
            (0, "ka", "x", "x"),
            (1, "kb", "x", "x"),
            (2, "kc", "y", "y"),
            (3, "kd", "y", "y"),
        ],
    );
    // Committed beside the server (as the CLI does), not applied yet.
    accepted(&users, 0, "x", 1)(&store).unwrap();
    let op = accepted(&users, 2, "y", 3);
    let (_, live) = graph.send(Apply(Box::new(op))).await.unwrap().unwrap();
    assert!(live.is_live());
    // The operation's own change was live first, alone; the earlier one right after.
    assert_eq!(
        seen.lock().unwrap().first(),
        Some(&vec![Ident::new("kd").unwrap()])
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the earlier change was never applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.lock().unwrap()[1], vec![Ident::new("kb").unwrap()]);
    assert!(keys.load()["kb"].sources("x").unwrap().admits(users[0].id));
    assert!(keys.load()["kd"].sources("y").unwrap().admits(users[2].id));
    // Applied through the newest change: the CLI waiting on it hears it is live.
    let newest = store.acl_version().unwrap();
    let s2 = store.clone();
    let waited = tokio::task::spawn_blocking(move || s2.wait_applied_at(newest, Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(waited, crate::store::models::applied::Live::Applied { .. }),
        "{waited:?}"
    );
}

#[actix_rt::test]
async fn an_operation_goes_live_between_two_slices_of_a_big_change_which_is_live_only_after_its_last() {
    // SQLite whatever the suite's backend: the test decides when the server hears of the
    // big change (its Refresh), which PostgreSQL's NOTIFY would decide for it, racing the
    // steps below. The slicing it checks is the actor's, the same on both backends.
    let db = crate::store::scratch::ScratchDb::sqlite().unwrap();
    let store = Store::open(db.url()).unwrap();
    let Started {
        users,
        graph,
        keys,
        told,
        watch,
        live_at,
    } = start(
        &store,
        &["a", "b", "c", "d", "e", "f", "g"],
        &[
            (0, "ka", "x", "x"),
            (1, "kb", "x", "x"),
            (2, "kc", "x", "x"),
            (3, "kd", "x", "x"),
            (4, "ke", "x", "x"),
            (5, "kf", "y", "y"),
            (6, "kg", "y", "y"),
        ],
    );
    // The big change, committed beside the server (as the CLI does): a shares x with
    // four users, four keys to derive, one a slice here.
    for to in 1..=4 {
        accepted(&users, 0, "x", to)(&store).unwrap();
    }
    let big = store.acl_version().unwrap();
    // The server's record is written (by its heartbeat), behind the big change.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while matches!(
        store.wait_applied_at(big, Duration::ZERO).unwrap(),
        crate::store::models::applied::Live::Applied { .. }
    ) {
        assert!(std::time::Instant::now() < deadline, "no heartbeat");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    *watch.lock().unwrap() = Some((store.clone(), big));
    // Heard of it (a NOTIFY, a poll), and an operation arrives while it is applied.
    graph.do_send(Refresh);
    let (_, live) = graph
        .send(Apply(Box::new(accepted(&users, 5, "y", 6))))
        .await
        .unwrap()
        .unwrap();
    assert!(live.is_live());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while told.lock().unwrap().len() < 5 {
        assert!(std::time::Instant::now() < deadline, "the big change never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = |s: &str| vec![Ident::new(s).unwrap()];
    // The big change a key a slice, in order, and the operation between two of its slices
    // (how many slices come first depends on when the actor turns to the operation: on
    // PostgreSQL the change's NOTIFY may have started the apply already).
    let told = told.lock().unwrap().clone();
    let big_keys: Vec<_> = told.iter().filter(|k| **k != id("kg")).cloned().collect();
    assert_eq!(big_keys, vec![id("kb"), id("kc"), id("kd"), id("ke")], "{told:?}");
    let at = told.iter().position(|k| *k == id("kg"));
    assert!(
        at.is_some_and(|i| i > 0 && i < told.len() - 1),
        "the operation went live between two slices of the big change: {told:?}"
    );
    // Nobody waiting on the big change heard it was live before its last key was.
    assert_eq!(*live_at.lock().unwrap(), vec![false; 5]);
    let s2 = store.clone();
    let waited = tokio::task::spawn_blocking(move || s2.wait_applied_at(big, Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(waited, crate::store::models::applied::Live::Applied { .. }),
        "{waited:?}"
    );
    for k in ["kb", "kc", "kd", "ke"] {
        assert!(keys.load()[k].sources("x").unwrap().admits(users[0].id), "{k}");
    }
    assert!(keys.load()["kg"].sources("y").unwrap().admits(users[5].id));
}
