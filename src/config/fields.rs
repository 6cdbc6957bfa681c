//! The field names of a `Deserialize` struct, read from serde itself, so that unknown keys get a
//! did-you-mean suggestion without a second list of keys to keep in sync.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The names of the fields `T` deserializes (empty when `T` is not a struct).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldCatcher {
        fields: &mut fields,
    });
    fields
}

struct FieldCatcher<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Caught;

impl std::fmt::Display for Caught {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names caught")
    }
}

impl std::error::Error for Caught {}

impl de::Error for Caught {
    fn custom<M: std::fmt::Display>(_message: M) -> Caught {
        Caught
    }
}

impl<'de> Deserializer<'de> for FieldCatcher<'_> {
    type Error = Caught;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Caught> {
        Err(Caught)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Caught> {
        *self.fields = fields;
        Err(Caught)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_a_struct() {
        let fields = fields_of::<crate::config::raw::RawApi>();
        assert_eq!(fields, ["listen", "token", "token_file", "allow_public"]);
        assert!(fields_of::<String>().is_empty());
    }
}
