//! What a page says after the viewer accepted a share, took up an offer or joined a group:
//! which of their keys receive each channel (see [`crate::social::receiving`]).

use serde_json::{Value, json};

use crate::social::ops::SocialError;
use crate::social::receiving;
use crate::web::WebState;
use crate::web::error::WebError;
use crate::web::session::Viewer;

/// What a page says after the viewer accepted something: per channel, which of their
/// keys receive it, and (when none does) the keys one click could add it to. `Null` when
/// `find` finds nothing the viewer may see.
pub(crate) async fn receiving_json(
    state: &WebState,
    v: &Viewer,
    find: impl FnOnce(
        &crate::store::Store,
        &crate::domain::listing::User,
    ) -> Result<Vec<receiving::Receiving>, SocialError>
    + Send
    + 'static,
) -> Result<Value, WebError> {
    let me = v.user.clone();
    let found = state
        .db(move |s| -> Result<_, SocialError> {
            let found = match find(s, &me) {
                Ok(f) => f,
                Err(SocialError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let keys: Vec<String> = s
                .authkeys_of(me.id)?
                .into_iter()
                .filter(|k| k.enabled)
                .map(|k| k.ident.as_str().to_owned())
                .collect();
            Ok(Some((found, keys)))
        })
        .await?;
    let Some((found, keys)) = found else {
        return Ok(Value::Null);
    };
    let channels: Vec<Value> = found
        .iter()
        .map(|r| {
            let mut j = r.to_json();
            j["none"] = json!(r.receiving_keys.is_empty());
            j["many"] = json!(r.receiving_keys.len() > 1);
            j
        })
        .collect();
    Ok(json!({"channels": channels, "keys": keys, "empty": channels.is_empty()}))
}
