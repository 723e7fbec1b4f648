//! Matching a request to a route: host, API version (path prefix or header), path template
//! with parameters, method. Routes are tried in file order and the first match wins (as in
//! Envoy); a path that matches with another method is told so (405 with `Allow`).
//!
//! Owns path templates and the match; it must never look at tokens.

use http::{HeaderMap, Method};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name...}`: the rest of the path (possibly empty), only last.
    Rest(String),
}

/// `/api/v1/products/{id}`: literal segments and named parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
}

impl PathTemplate {
    pub fn parse(source: &str) -> Result<PathTemplate, String> {
        if !source.starts_with('/') {
            return Err(format!("'{source}' must start with '/'"));
        }
        let mut segments = Vec::new();
        let parts: Vec<&str> = source[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if let Some(inner) = part.strip_prefix('{') {
                let Some(name) = inner.strip_suffix('}') else {
                    return Err(format!("'{part}' in '{source}': close the parameter with '}}'"));
                };
                if let Some(rest) = name.strip_suffix("...") {
                    if i + 1 != parts.len() {
                        return Err(format!(
                            "'{part}' in '{source}': a '{{name...}}' parameter must come last"
                        ));
                    }
                    segments.push(Segment::Rest(valid_name(rest, source)?));
                } else {
                    segments.push(Segment::Param(valid_name(name, source)?));
                }
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "'{part}' in '{source}': a parameter takes a whole segment, e.g. /items/{{id}}"
                ));
            } else if part.is_empty() && i + 1 != parts.len() {
                return Err(format!("'{source}' has an empty segment ('//')"));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(PathTemplate {
            source: source.to_owned(),
            segments,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parameters if `path` (without query) matches.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        // `/x/` is `/x`: a trailing slash never routes around the route of the bare path.
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        let path = path.strip_prefix('/')?;
        let mut params = Vec::new();
        let mut rest = Some(path);
        for seg in &self.segments {
            match seg {
                Segment::Rest(name) => {
                    params.push((name.clone(), crate::path::decode_param(rest.take().unwrap_or(""))));
                    return Some(params);
                }
                _ => {
                    let r = rest?;
                    let (head, tail) = match r.split_once('/') {
                        Some((h, t)) => (h, Some(t)),
                        None => (r, None),
                    };
                    match seg {
                        Segment::Literal(l) if l == head => {}
                        Segment::Param(name) if !head.is_empty() => {
                            params.push((name.clone(), crate::path::decode_param(head)))
                        }
                        _ => return None,
                    }
                    rest = tail;
                }
            }
        }
        rest.is_none().then_some(params)
    }
}

fn valid_name(name: &str, source: &str) -> Result<String, String> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "'{{{name}}}' in '{source}': parameter names are letters, digits and '_'"
        ))
    }
}

/// API version selector of a route.
#[derive(Debug, Clone)]
pub enum Version {
    Prefix(String),
    Header(http::HeaderName, String),
}

/// What a route matches on.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub host: Option<String>,
    pub version: Option<Version>,
    pub template: PathTemplate,
    pub methods: Option<Vec<Method>>,
}

/// The outcome of matching one request against one route.
pub enum Match {
    Yes(Vec<(String, String)>),
    /// Path, host and version match; the method does not.
    WrongMethod,
    No,
}

impl Matcher {
    pub fn check(&self, host: Option<&str>, method: &Method, path: &str, headers: &HeaderMap) -> Match {
        if let Some(want) = &self.host
            && !host.is_some_and(|h| h.eq_ignore_ascii_case(want))
        {
            return Match::No;
        }
        let path = match &self.version {
            None => path,
            Some(Version::Prefix(p)) => match path.strip_prefix(p.as_str()) {
                Some(rest) if rest.starts_with('/') => rest,
                _ => return Match::No,
            },
            Some(Version::Header(name, value)) => {
                if headers.get(name).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
                    return Match::No;
                }
                path
            }
        };
        let Some(params) = self.template.matches(path) else {
            return Match::No;
        };
        match &self.methods {
            Some(ms) if !(ms.contains(method) || method == Method::HEAD && ms.contains(&Method::GET)) => {
                Match::WrongMethod
            }
            _ => Match::Yes(params),
        }
    }
}

/// The host a request names: as received (for `Forwarded`) and without its port (for
/// matching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHost<'a> {
    pub raw: &'a str,
    pub name: &'a str,
}

/// A request whose host cannot be told: several `Host` headers, or one that is not a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadHost;

/// The host of a request: the authority of an absolute-form target, else the one `Host`
/// header (RFC 9112 §3.2.2). `Err` for several `Host` headers or one that is not a host;
/// `Ok(None)` when there is none (HTTP/1.0).
pub fn request_host<'a>(
    uri: &'a http::Uri,
    headers: &'a HeaderMap,
) -> Result<Option<RequestHost<'a>>, BadHost> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let header = values.next();
    if values.next().is_some() {
        return Err(BadHost);
    }
    let raw = match uri.authority() {
        Some(a) => a.as_str(),
        None => match header {
            Some(v) => v.to_str().map_err(|_| BadHost)?,
            None => return Ok(None),
        },
    };
    // reg-name, IPv4 or [IPv6], then an optional port: no userinfo, paths or quotes.
    let valid = !raw.is_empty()
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+,;=%".contains(&b));
    if !valid || raw.contains('@') {
        return Err(BadHost);
    }
    let name = match raw.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => raw.split(':').next().unwrap_or(""),
    };
    if name.is_empty() {
        return Err(BadHost);
    }
    Ok(Some(RequestHost { raw, name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> PathTemplate {
        PathTemplate::parse(s).unwrap()
    }

    #[test]
    fn templates_match_segments() {
        assert_eq!(t("/api/v1/products").matches("/api/v1/products"), Some(vec![]));
        assert_eq!(
            t("/api/v1/products").matches("/api/v1/products/"),
            Some(vec![]),
            "trailing slash"
        );
        assert_eq!(t("/api/v1/products").matches("/api/v1/productsX"), None);
        assert_eq!(
            t("/api/v1/products/{id}").matches("/api/v1/products/42"),
            Some(vec![("id".into(), "42".into())])
        );
        assert_eq!(t("/api/v1/products/{id}").matches("/api/v1/products/"), None);
        assert_eq!(t("/api/v1/products/{id}").matches("/api/v1/products/4/2"), None);
        assert_eq!(
            t("/files/{rest...}").matches("/files/a/b/c"),
            Some(vec![("rest".into(), "a/b/c".into())])
        );
        assert_eq!(
            t("/{rest...}").matches("/"),
            Some(vec![("rest".into(), "".into())])
        );
        assert_eq!(t("/").matches("/"), Some(vec![]));
        assert!(PathTemplate::parse("api").is_err());
        assert!(PathTemplate::parse("/a/{id").is_err());
        assert!(PathTemplate::parse("/a/x{id}").is_err());
        assert!(PathTemplate::parse("/a/{r...}/b").is_err());
        assert!(PathTemplate::parse("/a//b").is_err());
    }

    #[test]
    fn hosts_without_ports() {
        let mut h = HeaderMap::new();
        let uri: http::Uri = "/x".parse().unwrap();
        fn name(h: &HeaderMap) -> Result<Option<String>, BadHost> {
            let uri: http::Uri = "/x".parse().unwrap();
            request_host(&uri, h).map(|o| o.map(|h| h.name.to_owned()))
        }
        assert_eq!(name(&h), Ok(None));
        h.insert(http::header::HOST, "Api.Example.com:8000".parse().unwrap());
        assert_eq!(name(&h), Ok(Some("Api.Example.com".into())));
        assert_eq!(
            request_host(&uri, &h).unwrap().unwrap().raw,
            "Api.Example.com:8000"
        );
        h.insert(http::header::HOST, "[::1]:8000".parse().unwrap());
        assert_eq!(name(&h), Ok(Some("::1".into())));
        h.insert(http::header::HOST, "example.com".parse().unwrap());
        assert_eq!(name(&h), Ok(Some("example.com".into())));
        for bad in ["a\"b", "user@evil", "a/b", ":80", ""] {
            h.insert(http::header::HOST, bad.parse().unwrap());
            assert_eq!(name(&h), Err(BadHost), "{bad}");
        }
        h.insert(http::header::HOST, "a".parse().unwrap());
        h.append(http::header::HOST, "b".parse().unwrap());
        assert_eq!(name(&h), Err(BadHost), "two Host headers");
        let absolute: http::Uri = "http://api.example.com/x".parse().unwrap();
        assert_eq!(
            request_host(&absolute, &h).map(|o| o.map(|h| h.name)),
            Err(BadHost),
            "still two Host headers"
        );
        h.remove(http::header::HOST);
        h.insert(http::header::HOST, "other.example".parse().unwrap());
        assert_eq!(
            request_host(&absolute, &h).unwrap().unwrap().name,
            "api.example.com",
            "absolute-form wins"
        );
    }
}
