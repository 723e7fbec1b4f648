//! The canonical form of a request path: what routes match and what the upstream is sent,
//! so that the two can never disagree (`/api/v1/%61dmin` is `/api/v1/admin` for routing
//! too, and `/public/..;/admin` never walks around a policy).
//!
//! Owns path canonicalization (RFC 3986 §6.2.2). It must never decode an escaped `/` or
//! `\` into a separator, nor let a dot segment through.

use std::borrow::Cow;

/// Why a path is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    BadEscape,
    EncodedSeparator,
    DotSegment,
    EmptySegment,
}

impl PathError {
    pub fn description(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "The request path must start with '/'.",
            PathError::BadEscape => "The request path has a malformed percent-escape.",
            PathError::EncodedSeparator => "The request path has an encoded '/' or '\\'.",
            PathError::DotSegment => "The request path has '.' or '..' segments.",
            PathError::EmptySegment => "The request path has an empty segment ('//').",
        }
    }
}

/// RFC 3986 §2.3.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The canonical path: escapes of unreserved characters decoded, the other escapes in
/// upper case; refused when it has an escaped separator, a backslash, a `.` or `..`
/// segment (also with `;params`), or an empty segment other than a trailing slash.
pub fn canonical(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            return Err(PathError::EncodedSeparator);
        }
        if b != b'%' {
            if let Some(o) = out.as_mut() {
                o.push(b);
            }
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
            return Err(PathError::BadEscape);
        };
        let (Some(hv), Some(lv)) = ((*h as char).to_digit(16), (*l as char).to_digit(16)) else {
            return Err(PathError::BadEscape);
        };
        let decoded = (hv * 16 + lv) as u8;
        if decoded == b'/' || decoded == b'\\' {
            return Err(PathError::EncodedSeparator);
        }
        let o = out.get_or_insert_with(|| bytes[..i].to_vec());
        if unreserved(decoded) {
            o.push(decoded);
        } else {
            o.extend_from_slice(&[b'%', h.to_ascii_uppercase(), l.to_ascii_uppercase()]);
        }
        i += 3;
    }
    let canonical: Cow<'_, str> = match out {
        // Only ASCII was decoded into a valid UTF-8 string: still valid.
        Some(o) => Cow::Owned(String::from_utf8(o).map_err(|_| PathError::BadEscape)?),
        None => Cow::Borrowed(path),
    };
    let inner = &canonical[1..];
    let segments: Vec<&str> = inner.split('/').collect();
    for (n, seg) in segments.iter().enumerate() {
        let bare = seg.split(';').next().unwrap_or("");
        if bare == "." || bare == ".." {
            return Err(PathError::DotSegment);
        }
        if seg.is_empty() && n + 1 != segments.len() {
            return Err(PathError::EmptySegment);
        }
    }
    Ok(canonical)
}

/// A route parameter as the application means it: percent-escapes decoded (invalid UTF-8
/// replaced), for conditions.
pub fn decode_param(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        assert_eq!(canonical("/api/v1/products/42").unwrap(), "/api/v1/products/42");
        assert!(matches!(canonical("/api/v1/products").unwrap(), Cow::Borrowed(_)));
        assert_eq!(canonical("/api/v1/%61dmin/users").unwrap(), "/api/v1/admin/users");
        assert_eq!(canonical("/a/%7euser/%2d").unwrap(), "/a/~user/-");
        assert_eq!(canonical("/search/a%2bb%3f").unwrap(), "/search/a%2Bb%3F");
        assert_eq!(canonical("/x/").unwrap(), "/x/");
        assert_eq!(canonical("/").unwrap(), "/");
        assert_eq!(canonical("/caf%C3%A9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn refused_paths() {
        for (p, e) in [
            ("api", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("/a/%2fb", PathError::EncodedSeparator),
            ("/a/%5Cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::EncodedSeparator),
            ("/a/%zz", PathError::BadEscape),
            ("/a/%4", PathError::BadEscape),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a/%2e%2E/b", PathError::DotSegment),
            ("/public/..;/admin", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("//admin", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
        ] {
            assert_eq!(canonical(p).unwrap_err(), e, "{p}");
        }
    }

    #[test]
    fn params_are_decoded() {
        assert_eq!(decode_param("%30"), "0");
        assert_eq!(decode_param("caf%C3%A9"), "café");
        assert_eq!(decode_param("a%2Bb"), "a+b");
    }
}
