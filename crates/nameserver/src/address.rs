//! Validation of the `http_address` an input node registers.

use std::net::SocketAddr;

/// Checks that `address` is `host:port`: a socket address (`127.0.0.1:8080`, `[::1]:8080`) or a
/// host name with a numeric port (`node-4:8080`). On failure, says what is wrong in one phrase.
///
/// The address ends up in a `Location` header and in the health check's URL, so anything that could
/// change the meaning of a URL (`/`, `@`, `?`, spaces …) is refused.
pub(crate) fn check(address: &str) -> Result<(), String> {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return if socket.port() == 0 {
            Err("port 0 cannot be connected to".to_owned())
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err("it has no :port".to_owned());
    };
    match port.parse::<u16>() {
        Ok(0) => return Err("port 0 cannot be connected to".to_owned()),
        Ok(_) => {}
        Err(_) => return Err(format!("port {port:?} is not a number in 1-65535")),
    }
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host.contains(':') {
        return Err("an IPv6 host must be in brackets, e.g. [::1]:8080".to_owned());
    }
    if let Some(bad) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!(
            "the host may hold only letters, digits, '-', '.' and '_', not {bad:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_socket_addresses_and_host_names() {
        for good in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "node-4:80",
            "labctl-ring6-node-4.lab:65535",
            "localhost:1",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn refuses_what_is_not_host_port() {
        for (bad, why) in [
            ("", "no :port"),
            ("nope", "no :port"),
            ("127.0.0.1:notaport", "not a number"),
            ("127.0.0.1:70000", "not a number"),
            ("127.0.0.1:0", "port 0"),
            (":8080", "host is empty"),
            ("::1:8080", "brackets"),
            ("a/b:80", "not '/'"),
            ("user@host:80", "not '@'"),
            ("host name:80", "not ' '"),
        ] {
            let err = check(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err:?} should mention {why:?}");
        }
    }
}
