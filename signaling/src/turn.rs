//! Short-lived TURN credentials in the scheme coturn calls its REST API
//! (`use-auth-secret`): the user name is the expiry in Unix seconds and a label,
//! `EXPIRY:LABEL`, and the password is the Base64 of HMAC-SHA1 over the user name, keyed
//! with the secret the TURN server shares with this one. The TURN server checks both and
//! the expiry itself; no list of users is kept anywhere, and a password that leaks is
//! good only until its expiry.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use node_core::signal::IceServer;
use sha1::Sha1;

/// The user name and password for `label` until `expiry`.
pub fn credentials(secret: &str, label: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{label}");
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// `servers` with credentials filled in for every TURN server that has none of its own.
pub fn with_credentials(
    servers: &[IceServer],
    secret: Option<&str>,
    label: &str,
    expiry: u64,
) -> Vec<IceServer> {
    let is_turn = |s: &IceServer| {
        s.urls
            .iter()
            .any(|u| u.starts_with("turn:") || u.starts_with("turns:"))
    };
    servers
        .iter()
        .map(|s| match secret {
            Some(secret) if is_turn(s) && s.username.is_none() => {
                let (username, password) = credentials(secret, label, expiry);
                IceServer {
                    urls: s.urls.clone(),
                    username: Some(username),
                    credential: Some(password),
                }
            }
            _ => s.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_rest_api_scheme() {
        // The password computed independently (Python's hmac and base64).
        assert_eq!(
            credentials("north-wind", "demo", 1_700_000_000),
            (
                "1700000000:demo".to_string(),
                "p/EPqhUmeGwG1pm79Tbkl+UkTPQ=".to_string()
            )
        );
    }

    #[test]
    fn only_turn_servers_without_their_own_credentials_get_some() {
        let stun = IceServer {
            urls: vec!["stun:192.0.2.1:3478".into()],
            username: None,
            credential: None,
        };
        let turn = IceServer {
            urls: vec!["turn:192.0.2.1:3478".into()],
            username: None,
            credential: None,
        };
        let fixed = IceServer {
            urls: vec!["turn:192.0.2.2:3478".into()],
            username: Some("u".into()),
            credential: Some("p".into()),
        };
        let all = [stun.clone(), turn.clone(), fixed.clone()];
        let out = with_credentials(&all, Some("s"), "r", 10);
        assert_eq!(out[0], stun);
        assert_eq!(out[1].username.as_deref(), Some("10:r"));
        assert!(out[1].credential.is_some());
        assert_eq!(out[2], fixed);
        assert_eq!(with_credentials(&all, None, "r", 10), all.to_vec());
    }
}
