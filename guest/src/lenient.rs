//! Reading the server's text straight into the typed records, without a
//! tree: each field takes the JSON type it expects and becomes "absent"
//! when the server sent another (a tolerant reader: a changed type never
//! fails the answer), and the file-link walk visits the text once.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::response::FileLink;

/// A scalar as read, or `Other` for an object, an array or `null` (whose
/// content is skipped).
enum Scalar {
    Str(String),
    Bool(bool),
    U64(u64),
    I64(i64),
    Other,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A field that wants one kind of scalar: `Some` when the server sent that
/// kind, `None` for anything else.
macro_rules! lenient {
    ($(#[$doc:meta])* $name:ident: $ty:ty = |$scalar:ident| $pick:expr) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name(pub Option<$ty>);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let $scalar = Scalar::deserialize(d)?;
                Ok($name($pick))
            }
        }
    };
}

lenient!(
    /// A string.
    Text: String = |s| match s {
        Scalar::Str(v) => Some(v),
        _ => None,
    }
);
lenient!(
    /// A boolean.
    Flag: bool = |s| match s {
        Scalar::Bool(v) => Some(v),
        _ => None,
    }
);
lenient!(
    /// A count of seconds that fits (a negative or fractional number is none).
    Seconds: u32 = |s| match s {
        Scalar::U64(v) => Some(u32::try_from(v).unwrap_or(u32::MAX)),
        _ => None,
    }
);
lenient!(
    /// A Sirene date: a Unix timestamp (of midnight in Paris) as the ISO
    /// day, or a date the API already gives as text, unchanged.
    Day: String = |s| match s {
        Scalar::I64(v) => crate::instant::paris_day(v),
        Scalar::U64(v) => i64::try_from(v).ok().and_then(crate::instant::paris_day),
        Scalar::Str(v) => Some(v),
        _ => None,
    }
);

/// An object read as `T`, or none when the value is not an object.
#[derive(Debug)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData)).map(Obj)
    }
}

/// A field that may be there with any value (`Some`, `null` included) or
/// absent (`None`), unlike `Option`, which reads `null` as absent.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// What the walk keeps of one value: a link's URL (or its null), an
/// expiry's seconds, or nothing.
enum Seen {
    Url(Option<String>),
    Seconds(Option<u32>),
    Other,
}

/// What a key asks of its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `url` or `*_url`: a string or null is a link.
    Link,
    /// `expires_in` or `*_expires_in`: a count of seconds.
    Expiry,
    /// Anything else: only the links inside it count.
    Other,
}

impl Role {
    fn of(key: &str) -> Self {
        if key == "url" || key.ends_with("_url") {
            Role::Link
        } else if key.ends_with("expires_in") {
            Role::Expiry
        } else {
            Role::Other
        }
    }
}

/// Every `url`, `document_url` or `*_url` field of the JSON `text`, with its
/// expiry (`<field>_expires_in`, else `expires_in`, beside it), as JSON
/// pointers, in the order of a walk that visits an object's keys sorted.
/// Nothing is kept of the rest of the text.
pub fn file_links(text: &str) -> Result<Vec<FileLink>, serde_json::Error> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    Walk {
        pointer: &mut String::new(),
        out: &mut out,
        role: Role::Other,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// One value of the walk, at `pointer`, under a key of `role`; the links
/// inside it go to `out`.
struct Walk<'a> {
    pointer: &'a mut String,
    out: &'a mut Vec<FileLink>,
    role: Role,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Seen;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Seen, D::Error> {
        d.deserialize_any(self)
    }
}

/// An object's key, borrowed from the text when it has no escape.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Appends `key` to a JSON pointer, escaped.
fn push_key(pointer: &mut String, key: &str) {
    pointer.push('/');
    if key.contains(['~', '/']) {
        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        pointer.push_str(key);
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Seen;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Seen, E> {
        Ok(match self.role {
            Role::Link => Seen::Url(Some(v.to_owned())),
            _ => Seen::Other,
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Seen, E> {
        Ok(match self.role {
            Role::Link => Seen::Url(None),
            _ => Seen::Other,
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seen, E> {
        Ok(Seen::Seconds(Some(u32::try_from(v).unwrap_or(u32::MAX))))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Seen, E> {
        Ok(Seen::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Seen, E> {
        Ok(Seen::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Seen, E> {
        Ok(Seen::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seen, A::Error> {
        let len = self.pointer.len();
        let mut i = 0usize;
        loop {
            self.pointer.push('/');
            self.pointer.push_str(&i.to_string());
            let next = seq.next_element_seed(Walk {
                pointer: &mut *self.pointer,
                out: &mut *self.out,
                role: Role::Other,
            })?;
            self.pointer.truncate(len);
            if next.is_none() {
                return Ok(Seen::Other);
            }
            i += 1;
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seen, A::Error> {
        // Only keys that hold links (or whose value does) and expiries are
        // kept; the walk then gives them sorted, the last of a repeated key
        // winning, as a tree of the object would.
        let len = self.pointer.len();
        let mut found: Vec<(Key<'de>, Seen, Vec<FileLink>)> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            push_key(self.pointer, &key.0);
            let mut inner = Vec::new();
            let role = Role::of(&key.0);
            let seen = map.next_value_seed(Walk {
                pointer: &mut *self.pointer,
                out: &mut inner,
                role,
            })?;
            self.pointer.truncate(len);
            found.retain(|(k, _, _)| k.0 != key.0);
            if role != Role::Other || !inner.is_empty() {
                found.push((key, seen, inner));
            }
        }
        if found.is_empty() {
            return Ok(Seen::Other);
        }
        found.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        let seconds = |key: &str| {
            found.iter().find_map(|(k, seen, _)| match seen {
                Seen::Seconds(s) if k.0 == key => *s,
                _ => None,
            })
        };
        let mut links = Vec::new();
        for (key, seen, inner) in &found {
            match seen {
                Seen::Url(url) => {
                    let mut pointer = self.pointer.clone();
                    push_key(&mut pointer, &key.0);
                    links.push(FileLink {
                        pointer,
                        url: url.clone(),
                        expires_in_seconds: seconds(&format!("{}_expires_in", key.0)).or_else(|| seconds("expires_in")),
                    });
                }
                _ => links.extend(inner.iter().cloned()),
            }
        }
        self.out.append(&mut links);
        Ok(Seen::Other)
    }
}
