//! Certificate credentials: a client assertion the app signed with the key of one of its
//! registered certificates, checked as Entra checks it (Microsoft's certificate-credentials page).
//! Replay is checked by the caller, which holds the state.

use axum::http::StatusCode;

use crate::{
    certificate::{AssertionAlgorithm, RegisteredCertificate},
    directory::App,
    jwt::{self, Jwt},
    responses::AadError,
};

/// How long an assertion may be valid: the docs ask for 5-10 minutes; an hour leaves room for
/// clients that sign generously while still refusing long-lived, replayable assertions.
pub const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 3600;

/// What the replay check needs of an accepted assertion.
#[derive(Debug, PartialEq, Eq)]
pub struct AcceptedAssertion {
    pub jti: String,
    pub exp: i64,
}

/// Checks thumbprint, certificate dates, signature, `iss`/`sub`, `aud` (one of
/// `token_endpoints`), the time window and `jti`.
pub fn check_certificate_assertion(
    jwt: &Jwt,
    app: &App,
    token_endpoints: &[String],
    now: i64,
) -> Result<AcceptedAssertion, AadError> {
    let (algorithm, thumbprint) = match (
        jwt.header.alg.as_str(),
        &jwt.header.x5t_s256,
        &jwt.header.x5t,
    ) {
        ("PS256", Some(thumbprint), _) => (AssertionAlgorithm::Ps256, thumbprint),
        ("RS256", _, Some(thumbprint)) => (AssertionAlgorithm::Rs256, thumbprint),
        (alg, _, _) => {
            return Err(invalid_assertion(format!(
                "Client assertion contains an invalid signature. [Reason - The algorithm '{alg}' with the header's thumbprint is not supported: use PS256 with 'x5t#S256' or RS256 with 'x5t'.]"
            )));
        }
    };
    let certificate = app
        .certificates
        .iter()
        .filter_map(|pem| RegisteredCertificate::from_pem(pem).ok())
        .find(|certificate| certificate.is_named_by(algorithm, thumbprint))
        .ok_or_else(|| {
            invalid_assertion(format!(
                "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the configured keys for app Id '{}'.]",
                app.client_id
            ))
        })?;
    if !certificate.is_valid_at(now) {
        return Err(invalid_assertion(format!(
            "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumbprint}']"
        )));
    }
    if !certificate.verifies(algorithm, jwt.signed_part.as_bytes(), &jwt.signature) {
        return Err(invalid_assertion(
            "Client assertion failed signature validation.".to_owned(),
        ));
    }
    let claims = &jwt.claims;
    let is_client = |claim: &Option<String>| {
        claim
            .as_deref()
            .is_some_and(|value| value.eq_ignore_ascii_case(&app.client_id))
    };
    if !is_client(&claims.iss) || !is_client(&claims.sub) {
        return Err(invalid_assertion(format!(
            "Client assertion is invalid: 'iss' and 'sub' must both be the client id '{}'.",
            app.client_id
        )));
    }
    let audience_ok = claims.aud.as_slice().iter().any(|aud| {
        token_endpoints
            .iter()
            .any(|endpoint| endpoint.eq_ignore_ascii_case(aud))
    });
    if !audience_ok {
        return Err(invalid_assertion(format!(
            "Client assertion audience claim '{}' does not match the token endpoint; expected '{}'.",
            claims.aud.joined(),
            token_endpoints
                .first()
                .map(String::as_str)
                .unwrap_or_default()
        )));
    }
    jwt::check_time_window(claims, now).map_err(out_of_time_range)?;
    let exp = claims.exp.unwrap_or_default();
    let start = claims.nbf.or(claims.iat).unwrap_or(now);
    if exp - start > MAX_ASSERTION_LIFETIME_SECONDS {
        return Err(out_of_time_range(format!(
            "Client assertion is valid for {} seconds, more than the {MAX_ASSERTION_LIFETIME_SECONDS} allowed.",
            exp - start
        )));
    }
    let jti = claims
        .jti
        .clone()
        .filter(|jti| !jti.is_empty())
        .ok_or_else(|| invalid_assertion("Client assertion contains no 'jti' claim.".to_owned()))?;
    Ok(AcceptedAssertion { jti, exp })
}

/// The answer to a second use of the same assertion.
pub fn replayed(jti: &str) -> AadError {
    invalid_assertion(format!(
        "Client assertion has already been used: the 'jti' '{jti}' was seen before. Sign a new assertion for each request."
    ))
}

/// `invalid_client` AADSTS700027, answered 401 like a wrong secret.
pub fn invalid_assertion(description: String) -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700027,
        description,
    )
}

/// `invalid_client` AADSTS700024: outside the assertion's time window.
pub fn out_of_time_range(description: String) -> AadError {
    AadError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700024,
        description,
    )
}
