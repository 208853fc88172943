//! Fields of the small JSON documents the page reads once in a while (`config.json`,
//! Cognito's answers), by path.
//!
//! # Key decision: the browser's parser in the page
//! In the page the browser's own `JSON.parse` reads them and fields are looked up with
//! `Reflect.get`: a derived serde `Deserialize` costs ~2 KB of wasm per struct, and these
//! documents are read a handful of times per session, so their parsing need not be Rust's.
//! Elsewhere (native tests) `serde_json::Value` stands in, with the same answers; the
//! browser tests check the page's path on the same inputs.

/// A parsed JSON document.
#[derive(Debug)]
pub struct Json(Inner);

#[cfg(target_arch = "wasm32")]
type Inner = wasm_bindgen::JsValue;
#[cfg(not(target_arch = "wasm32"))]
type Inner = serde_json::Value;

impl Json {
    /// Parses `text`; `None` unless it is a JSON object.
    pub fn parse(text: &str) -> Option<Json> {
        #[cfg(target_arch = "wasm32")]
        let value = js_sys::JSON::parse(text)
            .ok()
            .filter(|v| v.is_object() && !js_sys::Array::is_array(v));
        #[cfg(not(target_arch = "wasm32"))]
        let value = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .filter(serde_json::Value::is_object);
        value.map(Json)
    }

    /// The value at `path` (object keys), if there is one.
    fn at(&self, path: &[&str]) -> Option<Inner> {
        let mut v = self.0.clone();
        for key in path {
            #[cfg(target_arch = "wasm32")]
            {
                if !v.is_object() {
                    return None;
                }
                v = js_sys::Reflect::get(&v, &wasm_bindgen::JsValue::from_str(key)).ok()?;
            }
            #[cfg(not(target_arch = "wasm32"))]
            {
                v = v.get(key)?.clone();
            }
        }
        Some(v)
    }

    /// The string at `path`; `None` if it is missing or not a string.
    pub fn str(&self, path: &[&str]) -> Option<String> {
        let v = self.at(path)?;
        #[cfg(target_arch = "wasm32")]
        return v.as_string();
        #[cfg(not(target_arch = "wasm32"))]
        return v.as_str().map(str::to_owned);
    }

    /// The number at `path`; `None` if it is missing or not a number.
    pub fn num(&self, path: &[&str]) -> Option<f64> {
        let v = self.at(path)?;
        #[cfg(target_arch = "wasm32")]
        return v.as_f64();
        #[cfg(not(target_arch = "wasm32"))]
        return v.as_f64();
    }

    /// Whether there is a value (of any kind but `null`) at `path`.
    pub fn has(&self, path: &[&str]) -> bool {
        #[cfg(target_arch = "wasm32")]
        return self
            .at(path)
            .is_some_and(|v| !v.is_undefined() && !v.is_null());
        #[cfg(not(target_arch = "wasm32"))]
        return self.at(path).is_some_and(|v| !v.is_null());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_path_and_only_with_their_kind() {
        let j = Json::parse(r#"{"a":{"b":"x","n":1.5,"z":null},"s":"t\u00e9"}"#).unwrap();
        assert_eq!(j.str(&["a", "b"]).as_deref(), Some("x"));
        assert_eq!(j.str(&["s"]).as_deref(), Some("té"));
        assert_eq!(j.num(&["a", "n"]), Some(1.5));
        assert_eq!(j.str(&["a", "n"]), None);
        assert_eq!(j.num(&["a", "b"]), None);
        assert_eq!(j.str(&["a", "b", "c"]), None);
        assert_eq!(j.str(&["missing"]), None);
        assert!(j.has(&["a"]) && !j.has(&["a", "z"]) && !j.has(&["q"]));
        for not_an_object in ["", "[1]", "\"x\"", "1", "null", "<html>", "{"] {
            assert!(Json::parse(not_an_object).is_none(), "{not_an_object}");
        }
    }
}
