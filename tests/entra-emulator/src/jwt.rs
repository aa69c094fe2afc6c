//! Compact JWTs as the token endpoint reads client assertions: header, claims, the signed bytes,
//! and the lifetime rules Entra applies. Signatures are checked by the callers, who know the key.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

/// Clock skew Entra tolerates on `exp` and `nbf` (the IdentityModel default, five minutes).
pub const CLOCK_SKEW_SECONDS: i64 = 300;

/// A parsed, not yet verified JWT.
#[derive(Debug)]
pub struct Jwt {
    pub header: Header,
    pub claims: Claims,
    /// `base64url(header) "." base64url(claims)`: what the signature covers.
    pub signed_part: String,
    pub signature: Vec<u8>,
}

#[derive(Debug, Deserialize)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
    /// base64url SHA-1 of the certificate DER (with `RS256`).
    pub x5t: Option<String>,
    /// base64url SHA-256 of the certificate DER (with `PS256`).
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Audiences,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
}

/// `aud` is a string or an array of strings (RFC 7519, 4.1.3).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audiences::None => &[],
            Audiences::One(one) => std::slice::from_ref(one),
            Audiences::Many(many) => many,
        }
    }

    /// For error messages, as Entra shows it.
    pub fn joined(&self) -> String {
        self.as_slice().join(",")
    }
}

impl Jwt {
    /// Splits and decodes `header.claims.signature`; the error says what is malformed.
    pub fn parse(compact: &str) -> Result<Jwt, String> {
        let mut parts = compact.trim().split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the assertion is not a compact JWT (three dot-separated parts)".into());
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|error| format!("the JWT {what} is not base64url: {error}"))
        };
        let header_json = decode(header, "header")?;
        let claims_json = decode(claims, "payload")?;
        Ok(Jwt {
            header: serde_json::from_slice(&header_json)
                .map_err(|error| format!("the JWT header is not valid: {error}"))?,
            claims: serde_json::from_slice(&claims_json)
                .map_err(|error| format!("the JWT payload is not valid: {error}"))?,
            signed_part: format!("{header}.{claims}"),
            signature: decode(signature, "signature")?,
        })
    }
}

/// Why an assertion's time window does not hold `now` (Entra's AADSTS700024 wording).
pub fn check_time_window(claims: &Claims, now: i64) -> Result<(), String> {
    let Some(exp) = claims.exp else {
        return Err("Client assertion contains no expiry time ('exp').".into());
    };
    let nbf = claims.nbf.unwrap_or(0);
    if exp + CLOCK_SKEW_SECONDS <= now || nbf - CLOCK_SKEW_SECONDS > now {
        return Err(format!(
            "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
            format_time(now),
            format_time(nbf),
            format_time(exp)
        ));
    }
    Ok(())
}

fn format_time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(nbf: Option<i64>, exp: Option<i64>) -> Claims {
        Claims {
            nbf,
            exp,
            ..Claims::default()
        }
    }

    #[test]
    fn time_window_allows_five_minutes_of_skew() {
        let now = 1_000_000;
        assert!(check_time_window(&claims(Some(now + 299), Some(now + 600)), now).is_ok());
        assert!(check_time_window(&claims(Some(now - 600), Some(now - 299)), now).is_ok());
        assert!(check_time_window(&claims(Some(now + 301), Some(now + 600)), now).is_err());
        assert!(check_time_window(&claims(Some(now - 900), Some(now - 300)), now).is_err());
    }

    #[test]
    fn missing_exp_is_refused_and_missing_nbf_means_always() {
        assert!(check_time_window(&claims(None, None), 5).is_err());
        assert!(check_time_window(&claims(None, Some(600)), 5).is_ok());
    }

    #[test]
    fn aud_may_be_a_string_or_an_array() {
        let one: Claims = serde_json::from_str(r#"{"aud":"a"}"#).unwrap();
        let many: Claims = serde_json::from_str(r#"{"aud":["a","b"]}"#).unwrap();
        assert_eq!(one.aud.as_slice(), ["a"]);
        assert_eq!(many.aud.as_slice(), ["a", "b"]);
    }

    #[test]
    fn malformed_jwts_say_why() {
        assert!(Jwt::parse("a.b").unwrap_err().contains("three"));
        assert!(Jwt::parse("!.e30.AA").unwrap_err().contains("header"));
    }
}
