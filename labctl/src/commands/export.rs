//! `labctl export compose FILE`: write a lab as a Docker Compose file.
//!
//! The file is the Docker runtime's [plan](crate::runtime::docker::plan) in its
//! [`Flavor::Compose`] form, so it has the very containers, networks, subnets, command lines and
//! labels `labctl up --runtime docker` would create: one service per container, keyed by the
//! container's name (daemons find each other by that name, and `docker stack deploy`, which
//! ignores `container_name`, gives a service's key as its DNS name), one network per node uplink
//! and per topology link, each with its explicit subnet.
//!
//! The YAML is written by hand, line by line, so the same topology always gives the same bytes
//! (the files in `compose/` are checked against it): every string value is double-quoted and
//! escaped, and every literal `$` is doubled so Compose does not read it as a variable. Only the
//! places meant to be filled in when the file runs use `${…}`: the image, the published HTTP port
//! and the session key.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use labctl_core::NodeId;
use labctl_topology::Topology;

use crate::cli::{ExportArgs, ExportCommand, ExportComposeArgs};
use crate::render::plural;
use crate::runtime::docker::plan::{
    Cidr, ContainerRole, Flavor, Links, Plan, BLOCK_PREFIX, COMPOSE_OWNER, LAB_LABEL,
    NAMESERVER_HTTP_PORT, NETWORK_PREFIX, OWNER_LABEL,
};
use crate::runtime::NodeSettings;
use crate::Outcome;

/// The image every service runs: the one `labctl image build` tags as latest, unless
/// `$LABCTL_IMAGE` names another.
fn image() -> String {
    format!(
        "${{LABCTL_IMAGE:-{}}}",
        crate::runtime::docker::image::LATEST
    )
}

/// Run `labctl export …`.
pub fn run(args: &ExportArgs) -> Result<Outcome> {
    match &args.command {
        ExportCommand::Compose(compose) => run_compose(compose),
    }
}

/// `labctl export compose`: plan the lab, write it as YAML to stdout or `--output`.
fn run_compose(args: &ExportComposeArgs) -> Result<Outcome> {
    let topology = Topology::from_path(&args.file)?;
    let lab = args.name.clone().unwrap_or_else(|| topology.name.clone());
    if !labctl_topology::valid_name(&lab) {
        bail!(
            "--name {lab:?} is not a valid lab name: use [a-z0-9][a-z0-9-]*, at most 63 characters"
        );
    }
    let regenerate = regenerate_command(args);
    let text = address_block(&lab, &topology, args.subnet.as_deref())
        .and_then(|block| compose_file(&lab, &topology, &regenerate, &block, args.http_port))
        .with_context(|| format!("{}: cannot export lab {lab}", args.file.display()))?;
    match &args.output {
        Some(path) => labctl_node::write_atomically(path, text.as_bytes()).with_context(|| {
            format!(
                "writing {}; check that its folder exists and is writable",
                path.display()
            )
        })?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(Outcome::Done)
}

/// The command that writes the file again, as the header shows it.
fn regenerate_command(args: &ExportComposeArgs) -> String {
    let mut command = format!("labctl export compose {}", args.file.display());
    if let Some(name) = &args.name {
        command.push_str(&format!(" --name {name}"));
    }
    if let Some(subnet) = &args.subnet {
        command.push_str(&format!(" --subnet {}", subnet.trim()));
    }
    if args.http_port != crate::runtime::docker::plan::COMPOSE_HTTP_PORT {
        command.push_str(&format!(" --http-port {}", args.http_port));
    }
    command
}

/// The address block a compose file's networks take their subnets from, and why that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    /// The block.
    cidr: Cidr,
    /// Where it came from.
    source: BlockSource,
}

/// Why a compose file uses the block it uses (its header says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockSource {
    /// `--subnet`.
    Given,
    /// The first block of the pool that no network of the Docker engine used at export time.
    Free,
    /// The pool's first block: no Docker engine answered.
    Default,
}

/// How many /28 networks the lab of `topology` needs: the management network, one uplink per
/// node, one per link.
fn networks_needed(topology: &Topology) -> u64 {
    1 + topology.node_count() as u64 + topology.link_count() as u64
}

/// `--subnet` checked, or else the first lab-sized block of the pool that is free on the Docker
/// engine (when one answers), or else the pool's first block.
fn address_block(lab: &str, topology: &Topology, subnet: Option<&str>) -> Result<Block> {
    if let Some(text) = subnet {
        let cidr = parse_subnet(text, lab, networks_needed(topology))?;
        return Ok(Block {
            cidr,
            source: BlockSource::Given,
        });
    }
    let pool = crate::runtime::docker::pool()?;
    let first = pool
        .subnet(BLOCK_PREFIX, 0)
        .context("the address pool holds no lab block")?;
    let default = Block {
        cidr: first,
        source: BlockSource::Default,
    };
    if networks_needed(topology) > first.subnets(NETWORK_PREFIX) {
        // Too big for any lab block: the plan says so, with advice; no need to ask the engine.
        return Ok(default);
    }
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async {
        if !crate::runtime::docker::engine::answers().await {
            return Ok(default);
        }
        let docker = crate::runtime::docker::engine::connect().await?;
        let cidr = crate::runtime::docker::free_block(&docker, &pool, &BTreeSet::new())
            .await
            .context("choosing an address block for the compose file; --subnet CIDR names one")?;
        Ok(Block {
            cidr,
            source: BlockSource::Free,
        })
    })
}

/// `--subnet`'s value as a block: a network written as its first address and prefix, with room
/// for the `needed` /28 networks of lab `lab`.
fn parse_subnet(text: &str, lab: &str, needed: u64) -> Result<Cidr> {
    let cidr = Cidr::parse(text).context("--subnet")?;
    let address = text.trim().split_once('/').map_or("", |(a, _)| a);
    if address.parse::<Ipv4Addr>().ok() != Some(cidr.host(0)) {
        bail!(
            "--subnet {text}: {address} is not the first address of a /{}; did you mean {cidr}?",
            cidr.prefix
        );
    }
    let room = cidr.subnets(NETWORK_PREFIX);
    if needed > room {
        // The longest prefix whose block holds `needed` /28s.
        let bits = u64::BITS - (needed - 1).leading_zeros();
        let prefix = u32::from(NETWORK_PREFIX).saturating_sub(bits);
        bail!(
            "--subnet {cidr} holds {room} /{NETWORK_PREFIX} networks, and lab {lab} needs \
             {needed} (one per node, one per link and the management network): give a /{prefix} \
             or larger"
        );
    }
    Ok(cidr)
}

/// The compose file of `topology` run as lab `lab` with its networks in `block`; `regenerate` is
/// the command that wrote it.
fn compose_file(
    lab: &str,
    topology: &Topology,
    regenerate: &str,
    block: &Block,
    http_port: u16,
) -> Result<String> {
    let settings = NodeSettings {
        timing: topology.timing,
        durability: topology.durability.unwrap_or_default(),
    };
    // Every node's chat on its own loopback port, after the nameserver's default 8080, so every
    // input node is the same host (127.0.0.1) to a browser and its session cookie holds at all.
    let ids = topology.ids();
    let count = ids.len();
    let http_ports: BTreeMap<NodeId, u16> = ids
        .into_iter()
        .zip((1u64..).map(|k| u16::try_from(u64::from(http_port) + k).unwrap_or(u16::MAX)))
        .collect();
    let plan = Plan::new(
        lab,
        topology,
        &settings,
        block.cidr,
        Flavor::Compose,
        Links::Networks,
        &http_ports,
    )?;
    if usize::from(u16::MAX - http_port) < count {
        bail!(
            "--http-port {http_port}: the {count} nodes' chats are published at the ports after \
             it, which run past {}; give a port below {}",
            u16::MAX,
            usize::from(u16::MAX) - count + 1
        );
    }
    let mut yaml = Yaml::default();
    header(&mut yaml, lab, topology, regenerate, block, http_port);
    services(&mut yaml, &plan, http_port)?;
    networks(&mut yaml, &plan);
    volumes(&mut yaml, &plan);
    Ok(yaml.text)
}

/// The comment at the top: where the file comes from and how to run it.
fn header(
    yaml: &mut Yaml,
    lab: &str,
    topology: &Topology,
    regenerate: &str,
    block: &Block,
    http_port: u16,
) {
    let why = match block.source {
        BlockSource::Given => "given by --subnet",
        BlockSource::Free => "free on the Docker engine at export time",
        BlockSource::Default => "the default: no Docker engine answered at export time",
    };
    let compose = format!("docker compose -p {lab} -f {lab}.yml");
    let last_port = u64::from(http_port) + topology.node_count() as u64;
    let lines = [
        format!(
            "Lab {lab} ({}, {}), generated by `labctl export compose`. Edit the topology rather",
            plural(topology.node_count(), "node"),
            plural(topology.link_count(), "link")
        ),
        "than this file, and write it again with".into(),
        format!("  {regenerate} -o {lab}.yml"),
        String::new(),
        "Every node needs the same secret, which signs chat logins; Compose wants it set for every"
            .into(),
        "command on this file, so export it first:".into(),
        "  export LABCTL_SESSION_SECRET=$(openssl rand -hex 32)".into(),
        "On one machine (Docker Compose v2, or docker-compose 1.29 as `docker-compose`):".into(),
        format!("  {compose} up -d"),
        format!(
            "and browse http://127.0.0.1:{http_port} (LABCTL_HTTP_PORT=N publishes another port)."
        ),
        format!("  {compose} logs -f     every daemon's log"),
        format!("  {compose} down -v     remove the lab and its volumes"),
        "On a Docker Swarm (`docker swarm init` makes one of this machine):".into(),
        format!("  docker stack deploy --resolve-image never -c {lab}.yml {lab}"),
        format!("  docker stack rm {lab}     (its volumes stay, for the next deploy: remove them)"),
        format!(
            "The image is {image}: `labctl image build` makes it, or",
            image = image()
        ),
        "`docker build -t labctl .` with the repository's Dockerfile; LABCTL_IMAGE=TAG runs another."
            .into(),
        format!(
            "Ports {http_port}-{last_port} are published on every interface of the machine \
             running each container."
        ),
        format!(
            "Each network is a /{NETWORK_PREFIX} of {} ({why});",
            block.cidr
        ),
        "--subnet CIDR exports the lab with another block.".into(),
        "compose/README.md in the labctl repository says more.".into(),
    ];
    for line in lines {
        yaml.comment(&line);
    }
}

/// `services:`, one per container of the plan, in the plan's order.
fn services(yaml: &mut Yaml, plan: &Plan, http_port: u16) -> Result<()> {
    let bootstrap = plan
        .container(ContainerRole::Bootstrap)
        .context("the plan has no bootstrap")?
        .name
        .clone();
    let nameserver = plan
        .container(ContainerRole::Nameserver)
        .context("the plan has no nameserver")?
        .name
        .clone();
    yaml.key(0, "services");
    for container in &plan.containers {
        let service = &container.name;
        yaml.key(1, service);
        yaml.value(2, "container_name", &literal(service));
        yaml.value(2, "image", &image());
        yaml.key(2, "command");
        for argument in &container.command {
            yaml.item(3, &literal(argument));
        }
        if !container.env.is_empty() {
            yaml.key(2, "environment");
            for (name, value) in &container.env {
                // The plan writes environment values as Compose templates (the session key is
                // `${LABCTL_SESSION_SECRET:?…}`): they are meant to be interpolated.
                yaml.value(3, name, value);
            }
        }
        // Labels on the container, and (`deploy.labels`) on the Swarm service that runs it.
        yaml.key(2, "labels");
        for (name, value) in &container.labels {
            yaml.value(3, name, &literal(value));
        }
        yaml.key(2, "deploy");
        // Swarm: the service's name resolves to its container's own address, as on a Compose
        // network, not to a virtual address behind the kernel's IPVS load balancer (which some
        // kernels lack, and which a single container does not need). Compose ignores it.
        yaml.value(3, "endpoint_mode", "dnsrr");
        yaml.key(3, "labels");
        for (name, value) in &container.labels {
            yaml.value(4, name, &literal(value));
        }
        yaml.key(2, "networks");
        for name in &container.networks {
            let network = plan.network(name).with_context(|| {
                format!("container {service} is on {name}, which is not planned")
            })?;
            yaml.item_plain(3, &network.key);
        }
        if !container.mounts.is_empty() {
            yaml.key(2, "volumes");
            for mount in &container.mounts {
                let mode = if mount.read_only { ":ro" } else { "" };
                yaml.item(
                    3,
                    &literal(&format!(
                        "{}:{}{mode}",
                        volume_name(service, &mount.target),
                        mount.target
                    )),
                );
            }
        }
        if let ContainerRole::Node(_) = container.role {
            yaml.key(2, "depends_on");
            yaml.item_plain(3, &bootstrap);
            yaml.item_plain(3, &nameserver);
        }
        // The long form, in host mode: published by the machine running the container, as
        // Compose does, not through Swarm's routing mesh (IPVS again, and `dnsrr` excludes it).
        // Neither `docker stack deploy` nor docker-compose 1.29 takes a host address in this
        // form, so the port is open on every interface of that machine.
        // A number where it is one: `docker stack deploy` takes a string only when it is
        // interpolated (the nameserver's `$LABCTL_HTTP_PORT`).
        let published = if container.role == ContainerRole::Nameserver {
            Some((
                quote(&format!("${{LABCTL_HTTP_PORT:-{http_port}}}")),
                NAMESERVER_HTTP_PORT,
            ))
        } else {
            container
                .publish
                .map(|p| (p.host_port.to_string(), p.container_port))
        };
        if let Some((host_port, container_port)) = published {
            yaml.key(2, "ports");
            yaml.raw(3, "- target", &container_port.to_string());
            yaml.raw(4, "published", &host_port);
            yaml.value(4, "mode", "host");
        }
    }
    Ok(())
}

/// `networks:`, keyed by the plan's short names, each named as the plan names it.
fn networks(yaml: &mut Yaml, plan: &Plan) {
    yaml.key(0, "networks");
    for network in &plan.networks {
        yaml.key(1, &network.key);
        yaml.value(2, "name", &literal(&network.name));
        yaml.raw(
            2,
            "internal",
            if network.internal { "true" } else { "false" },
        );
        yaml.key(2, "labels");
        for (name, value) in &network.labels {
            yaml.value(3, name, &literal(value));
        }
        yaml.key(2, "ipam");
        yaml.key(3, "config");
        // Only the subnet: `docker stack deploy` refuses a gateway here, and Docker takes the
        // subnet's first address as the gateway anyway, as planned.
        yaml.value(4, "- subnet", &network.subnet.to_string());
    }
}

/// `volumes:`, one per mount of a container, labelled with the lab.
fn volumes(yaml: &mut Yaml, plan: &Plan) {
    let all: Vec<String> = plan
        .containers
        .iter()
        .flat_map(|c| c.mounts.iter().map(|m| volume_name(&c.name, &m.target)))
        .collect();
    if all.is_empty() {
        return;
    }
    yaml.key(0, "volumes");
    for volume in all {
        yaml.key(1, &volume);
        yaml.key(2, "labels");
        yaml.value(3, LAB_LABEL, &literal(&plan.lab));
        yaml.value(3, OWNER_LABEL, COMPOSE_OWNER);
    }
}

/// The named volume of `service` mounted at `target`: `<service>-<last part of target>`, so
/// `/lab/state` is `<service>-state`.
fn volume_name(service: &str, target: &str) -> String {
    let last = target
        .rsplit('/')
        .find(|part| !part.is_empty())
        .unwrap_or("data");
    format!("{service}-{last}")
}

/// `text` as a value Compose does not interpolate: every `$` doubled.
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

/// `text` as a YAML double-quoted scalar: backslash, double quote, line breaks and every
/// non-printable character escaped, so any string (a multi-line topology, a `#`, a `: `) reads
/// back as itself.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{feff}' | '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as a mapping key or list item: plain when YAML (1.1 or 1.2) can only read it as that
/// very string, double-quoted otherwise.
fn key(text: &str) -> String {
    /// Words YAML 1.1 reads as booleans or null (in any case).
    const SPECIAL: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let mut chars = text.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !SPECIAL.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_string()
    } else {
        quote(text)
    }
}

/// A YAML document written line by line, two spaces per level.
#[derive(Default)]
struct Yaml {
    /// What has been written so far.
    text: String,
}

impl Yaml {
    /// `# text` (a blank `#` line for an empty one). A line break in `text` (a file name can
    /// hold one) would end the comment, so control characters become spaces.
    fn comment(&mut self, text: &str) {
        if text.is_empty() {
            self.text.push_str("#\n");
        } else {
            let text = text.replace(|c: char| c.is_control(), " ");
            self.text.push_str(&format!("# {text}\n"));
        }
    }

    /// `name:`, opening a mapping or list below it.
    fn key(&mut self, level: usize, name: &str) {
        self.line(level, &format!("{}:", key(name)));
    }

    /// `name: "value"`. A `name` starting with `- ` opens a list item holding a mapping.
    fn value(&mut self, level: usize, name: &str, value: &str) {
        let name = match name.strip_prefix("- ") {
            Some(rest) => format!("- {}", key(rest)),
            None => key(name),
        };
        self.line(level, &format!("{name}: {}", quote(value)));
    }

    /// `name: value` with `value` written as is (a boolean, a number). A `name` starting with
    /// `- ` opens a list item holding a mapping.
    fn raw(&mut self, level: usize, name: &str, value: &str) {
        let name = match name.strip_prefix("- ") {
            Some(rest) => format!("- {}", key(rest)),
            None => key(name),
        };
        self.line(level, &format!("{name}: {value}"));
    }

    /// `- "value"`.
    fn item(&mut self, level: usize, value: &str) {
        self.line(level, &format!("- {}", quote(value)));
    }

    /// `- value`, plain when that reads back as the same string: for references to keys.
    fn item_plain(&mut self, level: usize, value: &str) {
        self.line(level, &format!("- {}", key(value)));
    }

    fn line(&mut self, level: usize, text: &str) {
        for _ in 0..level {
            self.text.push_str("  ");
        }
        self.text.push_str(text);
        self.text.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_yaml_would_misread() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(""), r#""""#);
        assert_eq!(quote(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
        assert_eq!(
            quote("name = \"ring6\"\nnodes = [1, 2]\n"),
            r#""name = \"ring6\"\nnodes = [1, 2]\n""#
        );
        assert_eq!(quote("a\tb\rc\0"), r#""a\tb\rc\0""#);
        assert_eq!(quote("\u{1b}[0m\u{7f}"), r#""\x1b[0m\x7f""#);
        assert_eq!(quote("\u{85}\u{2028}\u{2029}"), r#""\N\L\P""#);
        assert_eq!(quote("\u{feff}"), r#""\ufeff""#);
        // Printable text stays as it is, also what would mean something unquoted.
        assert_eq!(
            quote("# not a comment: [x] {y} & *z"),
            r##""# not a comment: [x] {y} & *z""##
        );
        assert_eq!(quote("Grüße, 世界"), "\"Grüße, 世界\"");
    }

    #[test]
    fn keys_stay_plain_only_when_they_read_back_as_strings() {
        for plain in [
            "services",
            "ring6-bootstrap",
            "uplink-12",
            "labctl.lab",
            "_x",
        ] {
            assert_eq!(key(plain), plain);
        }
        for quoted in [
            "1-bootstrap",
            "yes",
            "No",
            "on",
            "null",
            "",
            "a b",
            "a:b",
            "-x",
            "~",
        ] {
            assert_eq!(key(quoted), quote(quoted), "{quoted:?}");
        }
    }

    #[test]
    fn literals_double_every_dollar() {
        assert_eq!(literal("no dollars"), "no dollars");
        assert_eq!(literal("$HOME and ${X}"), "$$HOME and $${X}");
    }

    #[test]
    fn volumes_are_named_after_service_and_target() {
        assert_eq!(volume_name("ring6-3", "/lab/state"), "ring6-3-state");
        assert_eq!(volume_name("ring6-3", "/lab/state/"), "ring6-3-state");
    }
}
