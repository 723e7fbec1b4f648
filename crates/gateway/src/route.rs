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
        let path = path.strip_prefix('/')?;
        let mut params = Vec::new();
        let mut rest = Some(path);
        for seg in &self.segments {
            match seg {
                Segment::Rest(name) => {
                    params.push((name.clone(), rest.take().unwrap_or("").to_owned()));
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
                            params.push((name.clone(), head.to_owned()))
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

/// The host of a request, without port: `Host` header or the URI's authority.
pub fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let raw = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.host())?;
    match raw.strip_prefix('[') {
        Some(v6) => v6.split(']').next(),
        None => raw.split(':').next(),
    }
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
        assert_eq!(t("/api/v1/products").matches("/api/v1/products/"), None);
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
        h.insert(http::header::HOST, "Api.Example.com:8000".parse().unwrap());
        assert_eq!(request_host(&uri, &h), Some("Api.Example.com"));
        h.insert(http::header::HOST, "[::1]:8000".parse().unwrap());
        assert_eq!(request_host(&uri, &h), Some("::1"));
        h.insert(http::header::HOST, "example.com".parse().unwrap());
        assert_eq!(request_host(&uri, &h), Some("example.com"));
    }
}
