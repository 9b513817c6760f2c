//! Reading one raw JSON record while mapping it, with errors that name the
//! record and the field's path (`orders O1: line_items[0].quantity is
//! missing`). Connectors add their source's own readers (money, dates in
//! its format) as traits on [`Fields`].

use serde_json::{Map, Value};
use tributary_schemas::{DataType, Timestamp};

/// Why a record could not be mapped, in words.
pub type MapError = String;

/// One JSON object of a record being mapped.
pub struct Fields<'a> {
    fields: &'a Map<String, Value>,
    data_type: DataType,
    id: String,
    path: String,
}

impl<'a> Fields<'a> {
    /// The record `raw` of `data_type` known by `id`, or the error that it
    /// is not an object.
    pub fn of(raw: &'a Value, data_type: DataType, id: &str) -> Result<Fields<'a>, MapError> {
        match raw.as_object() {
            Some(fields) => Ok(Fields {
                fields,
                data_type,
                id: id.to_string(),
                path: String::new(),
            }),
            None => Err(format!("{data_type}: the record is not an object")),
        }
    }

    /// Names the record by `id` in errors from now on.
    pub fn set_id(&mut self, id: &str) {
        self.id = id.to_string();
    }

    pub fn bad(&self, field: &str, why: &str) -> MapError {
        format!("{} {}: {}{field} {why}", self.data_type, self.id, self.path)
    }

    /// The object `value` found at `path` of this one.
    pub fn nested(&self, value: &'a Value, path: &str) -> Result<Fields<'a>, MapError> {
        match value.as_object() {
            Some(fields) => Ok(Fields {
                fields,
                data_type: self.data_type,
                id: self.id.clone(),
                path: format!("{}{path}.", self.path),
            }),
            None => Err(self.bad(path, "is not an object")),
        }
    }

    /// The field's value, `None` when absent or null.
    pub fn present(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(field).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(field, "is not a string")),
        }
    }

    pub fn opt_string(&self, field: &str) -> Result<Option<String>, MapError> {
        Ok(self.opt_str(field)?.map(str::to_string))
    }

    pub fn str(&self, field: &str) -> Result<&'a str, MapError> {
        self.opt_str(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.bad(field, "is not true or false")),
        }
    }

    /// An RFC 3339 instant.
    pub fn opt_time(&self, field: &str) -> Result<Option<Timestamp>, MapError> {
        match self.opt_str(field)? {
            None => Ok(None),
            Some(t) => Timestamp::parse(t)
                .map(Some)
                .map_err(|e| self.bad(field, &e.to_string())),
        }
    }

    pub fn time(&self, field: &str) -> Result<Timestamp, MapError> {
        self.opt_time(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    pub fn opt_obj(&self, field: &str) -> Result<Option<Fields<'a>>, MapError> {
        match self.present(field) {
            None => Ok(None),
            Some(v) => self.nested(v, field).map(Some),
        }
    }

    pub fn obj(&self, field: &str) -> Result<Fields<'a>, MapError> {
        self.opt_obj(field)?
            .ok_or_else(|| self.bad(field, "is missing"))
    }

    /// A list; absent is empty.
    pub fn array(&self, field: &str) -> Result<&'a [Value], MapError> {
        match self.present(field) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.bad(field, "is not a list")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_record_and_the_path() {
        let raw = json!({ "lines": [{ "qty": 1 }], "when": "yesterday", "n": 3 });
        let r = Fields::of(&raw, DataType::Order, "O1").unwrap();
        let line = r.nested(&r.array("lines").unwrap()[0], "lines[0]").unwrap();
        assert_eq!(
            line.str("qty").unwrap_err(),
            "orders O1: lines[0].qty is not a string"
        );
        assert_eq!(
            line.str("name").unwrap_err(),
            "orders O1: lines[0].name is missing"
        );
        assert!(r.opt_time("when").unwrap_err().contains("when"));
        assert!(r.array("n").unwrap_err().contains("is not a list"));
        assert!(r.array("none").unwrap().is_empty());
        assert!(Fields::of(&json!([1]), DataType::Order, "x").is_err());
    }
}
