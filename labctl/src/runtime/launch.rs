//! One description of each daemon's command line (`labctl daemon bootstrap|nameserver|node …`),
//! as a type. The process runtime, the Docker runtime and the compose export fill it in and
//! render it with `args()`, and `labctl daemon` parses the very flags back ([`crate::cli`]): a
//! test renders every field and parses the result with clap, so a flag renamed on one side
//! breaks the build's tests, not a lab.

use labctl_core::plane::Durability;
use labctl_core::Timing;

/// Where a daemon writes its ready file and its log (labctl's runtimes; a compose file has
/// neither: its daemons log to the container's output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    /// `--ready-file`.
    pub ready: String,
    /// `--log-file`.
    pub log: String,
}

impl Files {
    fn push(&self, args: &mut Vec<String>) {
        push(args, "--ready-file", &self.ready);
        push(args, "--log-file", &self.log);
    }
}

fn push(args: &mut Vec<String>, flag: &str, value: impl ToString) {
    args.push(flag.to_string());
    args.push(value.to_string());
}

/// `labctl daemon bootstrap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapLaunch {
    /// `--listen`: its gRPC address.
    pub listen: String,
    /// `--state-dir`.
    pub state_dir: String,
    /// `--topology-toml`: the topology on the command line (a compose file; labctl's runtimes
    /// hand it over by gRPC).
    pub topology_toml: Option<String>,
    /// `--ready-file`, `--log-file`.
    pub files: Option<Files>,
}

impl BootstrapLaunch {
    /// The arguments after `daemon`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["bootstrap".to_string()];
        push(&mut args, "--listen", &self.listen);
        push(&mut args, "--state-dir", &self.state_dir);
        if let Some(topology) = &self.topology_toml {
            push(&mut args, "--topology-toml", topology);
        }
        if let Some(files) = &self.files {
            files.push(&mut args);
        }
        args
    }
}

/// `labctl daemon nameserver`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameserverLaunch {
    /// `--grpc`.
    pub grpc: String,
    /// `--http`.
    pub http: String,
    /// `--ready-file`, `--log-file`.
    pub files: Option<Files>,
}

impl NameserverLaunch {
    /// The arguments after `daemon`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["nameserver".to_string()];
        push(&mut args, "--grpc", &self.grpc);
        push(&mut args, "--http", &self.http);
        if let Some(files) = &self.files {
            files.push(&mut args);
        }
        args
    }
}

/// A node's ports (`--control-port`, `--admin-port`, `--http-port`); 0 or absent: the kernel
/// picks a free one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodePorts {
    /// The ZeroMQ control port.
    pub control: u16,
    /// The admin gRPC port.
    pub admin: u16,
    /// The chat's HTTP port.
    pub http: Option<u16>,
}

/// `labctl daemon node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLaunch {
    /// `--id`.
    pub id: u64,
    /// `--lab`.
    pub lab: String,
    /// `--bootstrap`: the bootstrap's gRPC address.
    pub bootstrap: String,
    /// `--nameserver`: the nameserver's gRPC address.
    pub nameserver: String,
    /// `--listen`, when not the loopback.
    pub listen: Option<String>,
    /// `--advertise`: how neighbours reach it, when not the listen address.
    pub advertise: Option<String>,
    /// `--advertise-http` (`auto`: the address facing the nameserver).
    pub advertise_http: Option<String>,
    /// `--public-http`: where browsers reach its chat (a published port).
    pub public_http: Option<String>,
    /// Pinned ports (a restart keeps its own; a container's are fixed), else the kernel's pick.
    pub ports: Option<NodePorts>,
    /// `--heartbeat-ms`, `--suspicion-ms`.
    pub timing: Timing,
    /// `--durability`.
    pub durability: Durability,
    /// `--data-dir`.
    pub data_dir: String,
    /// `--session-secret-file` (else the key comes from `$LABCTL_SESSION_SECRET`).
    pub session_secret_file: Option<String>,
    /// `--await-interface`: a network interface to wait for (a container wired after it starts).
    pub await_interface: Option<String>,
    /// `--ready-file`, `--log-file`.
    pub files: Option<Files>,
}

impl NodeLaunch {
    /// The arguments after `daemon`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["node".to_string()];
        push(&mut args, "--id", self.id);
        push(&mut args, "--lab", &self.lab);
        push(&mut args, "--bootstrap", &self.bootstrap);
        push(&mut args, "--nameserver", &self.nameserver);
        let optional = [
            ("--listen", &self.listen),
            ("--advertise", &self.advertise),
            ("--advertise-http", &self.advertise_http),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                push(&mut args, flag, value);
            }
        }
        if let Some(ports) = self.ports {
            push(&mut args, "--control-port", ports.control);
            push(&mut args, "--admin-port", ports.admin);
            if let Some(http) = ports.http {
                push(&mut args, "--http-port", http);
            }
        }
        push(&mut args, "--heartbeat-ms", self.timing.heartbeat_ms);
        push(&mut args, "--suspicion-ms", self.timing.suspicion_ms);
        push(&mut args, "--durability", self.durability);
        push(&mut args, "--data-dir", &self.data_dir);
        let optional = [
            ("--await-interface", &self.await_interface),
            ("--session-secret-file", &self.session_secret_file),
            ("--public-http", &self.public_http),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                push(&mut args, flag, value);
            }
        }
        if let Some(files) = &self.files {
            files.push(&mut args);
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, DaemonCommand};

    fn parse(args: Vec<String>) -> DaemonCommand {
        let line = ["labctl".to_string(), "daemon".to_string()]
            .into_iter()
            .chain(args);
        match Cli::try_parse_from(line)
            .expect("labctl daemon parses what was rendered")
            .command
        {
            Command::Daemon(daemon) => daemon.command,
            other => panic!("not a daemon command: {other:?}"),
        }
    }

    fn files() -> Option<Files> {
        Some(Files {
            ready: "/lab/run/x.json".into(),
            log: "/lab/logs/x.log".into(),
        })
    }

    /// Every field of a node's launch, rendered and parsed back by `labctl daemon node`'s own
    /// parser, arrives where it was meant to.
    #[test]
    fn a_node_launch_parses_back_field_for_field() {
        let launch = NodeLaunch {
            id: 7,
            lab: "ring6".into(),
            bootstrap: "ring6-bootstrap:7000".into(),
            nameserver: "ring6-nameserver:7001".into(),
            listen: Some("0.0.0.0".into()),
            advertise: Some("ring6-7".into()),
            advertise_http: Some("auto".into()),
            public_http: Some("127.0.0.1:9000".into()),
            ports: Some(NodePorts {
                control: 7100,
                admin: 7101,
                http: Some(8080),
            }),
            timing: Timing {
                heartbeat_ms: 50,
                suspicion_ms: 700,
            },
            durability: Durability::Writer,
            data_dir: "/lab/state".into(),
            session_secret_file: Some("/lab/session.key".into()),
            await_interface: Some("uplink".into()),
            files: files(),
        };
        let DaemonCommand::Node(a) = parse(launch.args()) else {
            panic!("not a node")
        };
        assert_eq!(
            (
                a.id,
                a.lab.as_str(),
                a.bootstrap.as_str(),
                a.nameserver.as_deref()
            ),
            (
                7,
                "ring6",
                "ring6-bootstrap:7000",
                Some("ring6-nameserver:7001")
            )
        );
        assert_eq!(
            (
                a.listen.as_str(),
                a.advertise.as_deref(),
                a.advertise_http.as_deref()
            ),
            ("0.0.0.0", Some("ring6-7"), Some("auto"))
        );
        assert_eq!(a.public_http.as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(
            (a.control_port, a.admin_port, a.http_port),
            (7100, 7101, 8080)
        );
        assert_eq!((a.heartbeat_ms, a.suspicion_ms), (50, 700));
        assert_eq!(a.durability, Durability::Writer);
        assert_eq!(a.data_dir.to_str(), Some("/lab/state"));
        assert_eq!(
            a.session_secret_file.as_deref().and_then(|p| p.to_str()),
            Some("/lab/session.key")
        );
        assert_eq!(a.await_interface.as_deref(), Some("uplink"));
        assert_eq!(
            a.ready_file.as_deref().and_then(|p| p.to_str()),
            Some("/lab/run/x.json")
        );
        assert_eq!(
            a.log_file.as_deref().and_then(|p| p.to_str()),
            Some("/lab/logs/x.log")
        );

        // Left out, each takes the daemon's default.
        let bare = NodeLaunch {
            listen: None,
            advertise: None,
            advertise_http: None,
            public_http: None,
            ports: None,
            session_secret_file: None,
            await_interface: None,
            files: None,
            ..launch
        };
        let DaemonCommand::Node(a) = parse(bare.args()) else {
            panic!("not a node")
        };
        assert_eq!((a.control_port, a.admin_port, a.http_port), (0, 0, 0));
        assert_eq!(a.listen, "127.0.0.1");
        assert!(a.ready_file.is_none() && a.await_interface.is_none());
    }

    #[test]
    fn the_services_launches_parse_back() {
        let bootstrap = BootstrapLaunch {
            listen: "0.0.0.0:7000".into(),
            state_dir: "/lab/state".into(),
            topology_toml: Some("name = \"x\"\nnodes = [1]\nlinks = []\n".into()),
            files: files(),
        };
        let DaemonCommand::Bootstrap(a) = parse(bootstrap.args()) else {
            panic!("not a bootstrap")
        };
        assert_eq!(a.listen, "0.0.0.0:7000");
        assert_eq!(a.state_dir.to_str(), Some("/lab/state"));
        assert_eq!(a.topology_toml, bootstrap.topology_toml);
        assert!(a.ready_file.is_some() && a.log_file.is_some());

        let nameserver = NameserverLaunch {
            grpc: "0.0.0.0:7001".into(),
            http: "0.0.0.0:8080".into(),
            files: None,
        };
        let DaemonCommand::Nameserver(a) = parse(nameserver.args()) else {
            panic!("not a nameserver")
        };
        assert_eq!(
            (a.grpc.as_str(), a.http.as_str()),
            ("0.0.0.0:7001", "0.0.0.0:8080")
        );
        assert!(a.ready_file.is_none());
    }
}
