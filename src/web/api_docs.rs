//! The API's documentation as a page of the site, rendered on the server from the same
//! OpenAPI document `/api/v1/openapi.json` serves (no script, no viewer to ship): every
//! operation with its parameters, body and answers, and every schema they name.

use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

use super::error::WebError;
use super::render::Page;
use super::session::MaybeViewer;

/// The OpenAPI document, parsed once.
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(super::api::OPENAPI).unwrap_or(Value::Null))
}

/// `#/components/schemas/Name` → `Name`.
fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// Escaped text with `` `code` `` spans as `<code>`: the document's own prose, safe to
/// write unescaped.
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, part) in text.split('`').enumerate() {
        let part = handlebars::html_escape(part);
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&part);
            out.push_str("</code>");
        } else {
            out.push_str(&part);
        }
    }
    out
}

/// A schema in a few words: `string`, `array of Share`, `one of accept, decline`, a
/// named schema (linked on the page), or its parts joined with `+`.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return ref_name(r).to_owned();
    }
    if let Some(list) = schema.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = list
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        return format!("one of {}", words.join(", "));
    }
    if let Some(c) = schema.get("const") {
        return format!("always {c}");
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            let sep = if key == "allOf" { " + " } else { " or " };
            return parts.iter().map(type_of).collect::<Vec<_>>().join(sep);
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => format!(
            "array of {}",
            schema.get("items").map_or_else(|| "values".into(), type_of)
        ),
        Some(t) => t.to_owned(),
        None => "any".into(),
    }
}

/// The fields of an object schema (through `allOf` and named schemas), for a table.
fn fields(schema: &Value, out: &mut Vec<Value>, depth: usize) {
    if depth > 4 {
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some(named) = document()["components"]["schemas"].get(ref_name(r)) {
            fields(named, out, depth + 1);
        }
        return;
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for p in parts {
            fields(p, out, depth + 1);
        }
        return;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, f) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        out.push(json!({
            "name": name,
            "type": type_of(f),
            "required": required.contains(&name.as_str()),
            "description": prose(f.get("description").and_then(Value::as_str).unwrap_or_default()),
        }));
    }
}

fn body_json(content: Option<&Value>) -> Value {
    let Some(schema) = content.and_then(|c| c.pointer("/application~1json/schema")) else {
        return Value::Null;
    };
    let mut list = Vec::new();
    fields(schema, &mut list, 0);
    json!({"type": type_of(schema), "fields": list})
}

/// The page's data: operations in the document's order, then the schemas by name.
pub fn context() -> Value {
    let doc = document();
    let mut operations = Vec::new();
    for (path, methods) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in methods.as_object().into_iter().flatten() {
            let params: Vec<Value> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    json!({
                        "name": p["name"],
                        "in": p["in"],
                        "required": p["required"].as_bool().unwrap_or(false),
                        "type": type_of(&p["schema"]),
                        "description": prose(p["description"].as_str().unwrap_or_default()),
                    })
                })
                .collect();
            let responses: Vec<Value> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, r)| {
                    let r = match r.get("$ref").and_then(Value::as_str) {
                        Some(name) => &doc["components"]["responses"][ref_name(name)],
                        None => r,
                    };
                    let schema = r.pointer("/content/application~1json/schema");
                    json!({
                        "status": status,
                        "description": prose(r["description"].as_str().unwrap_or_default()),
                        "type": schema.map(type_of),
                    })
                })
                .collect();
            let body = op
                .get("requestBody")
                .map(|b| {
                    let mut j = body_json(b.get("content"));
                    j["required"] = json!(b["required"].as_bool().unwrap_or(false));
                    j["description"] = json!(prose(b["description"].as_str().unwrap_or_default()));
                    j
                })
                .filter(|j| !j["type"].is_null());
            let anchor: String = format!("{method}{path}")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            operations.push(json!({
                "method": method.to_uppercase(),
                "path": path,
                "anchor": anchor,
                "summary": prose(op["summary"].as_str().unwrap_or_default()),
                "params": params,
                "body": body,
                "responses": responses,
            }));
        }
    }
    let mut schemas: Vec<(&String, &Value)> = doc["components"]["schemas"]
        .as_object()
        .map(Map::iter)
        .into_iter()
        .flatten()
        .collect();
    schemas.sort_by_key(|(n, _)| n.to_lowercase());
    let schemas: Vec<Value> = schemas
        .into_iter()
        .map(|(name, s)| {
            let mut list = Vec::new();
            fields(s, &mut list, 0);
            json!({
                "name": name,
                "type": type_of(s),
                "description": prose(s["description"].as_str().unwrap_or_default()),
                "fields": list,
            })
        })
        .collect();
    json!({
        "title": doc["info"]["title"],
        "intro": prose(doc["info"]["description"].as_str().unwrap_or_default()),
        "base": doc["servers"][0]["url"],
        "operations": operations,
        "schemas": schemas,
    })
}

/// `GET /api/docs`: the page (public, like the document itself).
pub async fn page(state: super::State, req: HttpRequest, v: MaybeViewer) -> Result<HttpResponse, WebError> {
    Page::new("api_docs", "API", "", context()).render(&state, &req, v.0.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_of_the_document_is_on_the_page() {
        let ctx = context();
        let ops = ctx["operations"].as_array().unwrap();
        let documented: usize = document()["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|m| m.as_object().unwrap().len())
            .sum();
        assert_eq!(ops.len(), documented);
        let offer = ops
            .iter()
            .find(|o| o["method"] == "POST" && o["path"] == "/shares")
            .unwrap();
        assert_eq!(offer["body"]["type"], "ShareBody");
        assert!(
            offer["body"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["name"] == "channel" && f["required"] == true)
        );
        assert!(
            offer["responses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["status"] == "201" && r["type"] == "ShareCreated")
        );
        assert_eq!(
            ctx["schemas"].as_array().unwrap().len(),
            document()["components"]["schemas"].as_object().unwrap().len()
        );
        assert_eq!(prose("a `b<c>` d"), "a <code>b&lt;c&gt;</code> d");
    }
}
