//! The command line, as clap sees it. Each subcommand's options live beside its name here; what it
//! does lives in `commands/<name>.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use labctl_core::plane::Durability;
use labctl_fault::Target;

/// A container-lab testbed for distributed algorithms: Yo-Yo leader election, SHOUT spanning
/// trees, and a chat service on top.
///
/// Start with `labctl sim topologies/ring6.toml` to watch an election in the simulator, or
/// `labctl validate FILE` to check a topology file you wrote.
#[derive(Debug, Parser)]
#[command(
    name = "labctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check topology files: syntax, ids, links, connectivity.
    ///
    /// Prints one line per valid file. The first invalid file stops with an error naming its
    /// line and column, the offending value and what would be valid (exit code 2).
    Validate(ValidateArgs),
    /// Run Yo-Yo and SHOUT+ on a topology in the deterministic simulator and report.
    ///
    /// Prints the leader, the spanning tree, every node's roles and the message counts beside
    /// the algorithms' bounds. Same file, seed and delivery: same run, bit for bit. Exit code 1
    /// when an invariant does not hold (say, a bound is exceeded).
    Sim(SimArgs),
    /// Show a topology's graph as text or in Graphviz's DOT language.
    Graph(GraphArgs),
    /// Start a live lab: a bootstrap, a nameserver and one node per vertex, then report.
    ///
    /// Waits until the lab has converged (every node in the same epoch with the same leader, the
    /// parents a spanning tree of the topology, every node with its roles), prints the report and
    /// returns, leaving the lab running; `labctl down NAME` removes it. Exit code 1 when it did not
    /// converge within --timeout.
    Up(UpArgs),
    /// Report on a running lab, read live from its nodes.
    Status(StatusArgs),
    /// Stop a lab (its processes, or its containers and networks) and remove its state.
    Down(DownArgs),
    /// List labs.
    Ls(LsArgs),
    /// Break a running lab on purpose: kill, pause or restart nodes, cut or slow links.
    ///
    /// Every fault is applied for real: in the process runtime a kill is SIGKILL, pause and resume
    /// are SIGSTOP and SIGCONT, a restart starts the node again on its own folder and ports; in
    /// the Docker runtime the same happens to the container, and a cut sets both ends of the
    /// link's veth pair down (or disconnects the link's network). Delays and losses (and cuts between processes) go through a filter in both ends'
    /// transports. Faults in force are kept in the lab's folder: `labctl status` lists them and
    /// `labctl fault heal --all` undoes them all. A node may be named `leader`: the root of the
    /// component that holds a quorum, when the fault is applied. A fault naming an unknown node,
    /// two nodes that share no link, or a node in the wrong state is refused and changes nothing
    /// (exit code 2).
    Fault(FaultArgs),
    /// Run a chaos scenario and judge it: valid, invalid or unknown (exit code 0, 1 or 2).
    ///
    /// Starts the scenario's lab (or uses the running lab it names), runs its chat clients
    /// through the nameserver while applying its faults at their times (and random ones from its
    /// seed), heals everything, waits for convergence, reads the clients' group at every input
    /// node and checks the recorded history for lost writes, phantom writes, stale reads, split
    /// brain, diverging nodes and a lab that did not converge. The run's folder keeps
    /// `scenario.toml`, `history.jsonl`, `report.json` and `timeline.svg`. The lab is removed at
    /// the end unless --keep. Shipped scenarios are in `scenarios/`.
    Chaos(ChaosArgs),
    /// An election told step by step: every node's part in each Yo-Yo iteration, the edges'
    /// directions, the values going down and the answers coming up, then the SHOUT+ wave and the
    /// roles, with the messages of each step beside the bounds.
    ///
    /// From the simulator (a topology file, with --seed and --delivery as `sim` takes them), or
    /// from a running lab (its name): every epoch its nodes recorded (each keeps its last 16
    /// epochs in memory), so a failover can be replayed. `--step` waits for Enter between steps on a terminal; `--html OUT.html` writes one
    /// self-contained page instead (no network needed): previous/next buttons and arrow keys, a
    /// picture per step and a space-time diagram of the messages.
    Trace(TraceArgs),
    /// A local web page that shows a running lab live, for a projector: the graph with the tree
    /// and the roles, the epoch, the components, the faults in force, the message counters and a
    /// history of epochs with failover times, with buttons that inject every fault on the node or
    /// link clicked (as `labctl fault` does).
    ///
    /// Served on 127.0.0.1 only, until Ctrl-C. Its API: `GET /api/report` (as `labctl status
    /// --json`), `GET /api/events` (server-sent `report` events, one per change) and `POST
    /// /api/faults` (one fault object, e.g. {"action":"kill","node":3}).
    Dashboard(DashboardArgs),
    /// Load a running lab and report throughput, latency and errors.
    Bench(BenchArgs),
    /// Print a lab's daemon logs: one daemon's, or every daemon's merged in time order.
    Logs(LogsArgs),
    /// Open a shell in a node: inside its container (Docker) or in its folder (processes).
    ///
    /// In a Docker lab it runs `docker exec -it <lab>-<id> sh` (the `docker` CLI must be
    /// installed): busybox's shell, with `ip`, `ping`, `nc`, `wget` and the rest of busybox's
    /// applets, in the node's network namespace, so it sees exactly the node's links (`ping
    /// <lab>-<id>` answers for a neighbour only). It runs as the container's user (you); busybox's
    /// ping opens a raw socket, so a user other than root needs `--root` for it. In a process lab
    /// it opens $SHELL (else /bin/sh) in the node's data folder. Either way the node's
    /// environment is set: LABCTL_LAB, LABCTL_NODE, LABCTL_CONTROL (its ZeroMQ address) and
    /// LABCTL_ADMIN (its admin gRPC address). After `--`, a command runs instead of the
    /// interactive shell (`labctl shell ring6 1 -- sh -c 'ip addr'`), and its exit code is
    /// labctl's.
    Shell(ShellArgs),
    /// Build the container image the Docker runtime runs (`up` does it when needed).
    Image(ImageArgs),
    /// Write a lab out for another tool (a Docker Compose file).
    Export(ExportArgs),
    /// Run one of a lab's daemons (used by `labctl up`).
    #[command(hide = true)]
    Daemon(Box<DaemonArgs>),
}

#[derive(Debug, clap::Args)]
pub struct FaultArgs {
    /// The lab (default: the only lab there is).
    #[arg(long, global = true, value_name = "NAME")]
    pub lab: Option<String>,
    /// Print what was done as one JSON object: the fault applied and the faults in force.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: FaultAction,
}

#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// Kill a node (SIGKILL; the container killed). It stays down until restarted.
    Kill {
        /// A node id, or `leader`.
        #[arg(value_name = "NODE")]
        node: Target,
    },
    /// Freeze a node (SIGSTOP; the container paused). Its neighbours soon suspect it.
    Pause {
        /// A node id, or `leader`.
        #[arg(value_name = "NODE")]
        node: Target,
    },
    /// Thaw a paused node.
    Resume {
        /// A node id, or `leader`.
        #[arg(value_name = "NODE")]
        node: Target,
    },
    /// Start a node again on its own folder and ports (a running one is killed first). It comes
    /// back above its last epoch and rejoins.
    Restart {
        /// A node id, or `leader`.
        #[arg(value_name = "NODE")]
        node: Target,
    },
    /// Cut the link between two neighbours: nothing passes either way until it is healed.
    Cut {
        /// One end: a node id, or `leader`.
        a: Target,
        /// The other end.
        b: Target,
    },
    /// Undo the faults on one link (a cut, a delay, a loss), or with --all every fault in force.
    Heal {
        /// One end: a node id, or `leader`.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        a: Option<Target>,
        /// The other end.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        b: Option<Target>,
        /// Undo every fault in force: resume paused nodes, restart killed ones, heal every link.
        #[arg(long)]
        all: bool,
    },
    /// Split the lab: cut every link between the groups, which must hold every node once
    /// (e.g. `partition 1,2 3,4,5,6`).
    Partition {
        /// Two or more groups of comma-separated node ids.
        #[arg(required = true, num_args = 2.., value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Delay every frame on a link by --ms, both ways (the order is kept).
    Delay {
        /// One end: a node id, or `leader`.
        a: Target,
        /// The other end.
        b: Target,
        /// The delay, in milliseconds (1 to 60000).
        #[arg(long, value_name = "N")]
        ms: u64,
    },
    /// Lose frames on a link, as TCP sees loss: a lost frame is sent again after 200 ms
    /// (doubling while it is lost again), so the algorithms see delay, never loss.
    Loss {
        /// One end: a node id, or `leader`.
        a: Target,
        /// The other end.
        b: Target,
        /// The probability a frame is lost, in percent (1 to 90).
        #[arg(long, value_name = "P")]
        percent: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Topology files (TOML) to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// The topology file (TOML).
    #[arg(value_name = "FILE", required_unless_present = "scale")]
    pub file: Option<PathBuf>,
    /// Seed for the random message delays of `--delivery async`.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// How links deliver: `sync` moves in rounds (every message takes one step, so the tree is
    /// breadth-first); `async` gives every message a random delay, keeping each link FIFO.
    #[arg(long, value_enum, default_value_t = DeliveryArg::Sync)]
    pub delivery: DeliveryArg,
    /// Print the report as one JSON object (SPEC §7) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print every send, receive and state change as JSON Lines on stdout (the text summary then
    /// goes to stderr; with --json the report is the last line).
    #[arg(long)]
    pub trace: bool,
    /// Run live nodes (heartbeats, suspicion, re-election) under faults instead of one clean
    /// election: `random` draws a schedule of every kind of fault from --seed; a FILE gives one
    /// as `[[fault]]` tables (`at_s`, then the fault object of `labctl fault`: `action = "kill"`,
    /// `node = "leader"` …; a top-level `heal_at_end = false` leaves the last faults in force).
    /// The run checks that no two nodes write in one epoch, that every writer holds a majority,
    /// and that the lab settles once the faults stop; a failure names the seed that replays it.
    #[arg(long, value_name = "random|FILE", conflicts_with = "delivery")]
    pub faults: Option<String>,
    /// With `--faults random`: for how long faults are drawn, in seconds.
    #[arg(long, default_value_t = 20, value_name = "S", requires = "faults")]
    pub duration_s: u64,
    /// With `--faults random`: sweep a range of seeds instead of one, `A..B` (B left out), on
    /// every core. Prints each failing seed with the command that replays it, then a summary:
    /// seeds per second and failures (exit code 1 if any seed failed).
    #[arg(long, value_name = "A..B", requires = "faults", conflicts_with_all = ["seed", "trace"],
          value_parser = seed_range)]
    pub seeds: Option<std::ops::Range<u64>>,
    /// Refuse a run estimated to need more memory than this (e.g. `4GiB`); default: the memory
    /// available now (the machine's, or the cgroup's if lower). The estimate comes from the
    /// topology's node and link counts, before anything is built.
    #[arg(long, value_name = "SIZE", value_parser = crate::memory::parse)]
    pub max_memory: Option<u64>,
    /// Run even when the memory estimate says the run will not fit.
    #[arg(long)]
    pub force: bool,
    /// Instead of one topology: how Yo-Yo's cost grows. Runs one election on random graphs of
    /// each of --sizes (average degree --degree, shuffled ids, async delivery, seed 1) and prints
    /// n, m, the iterations against ⌈log₂ n⌉ + 1, the messages against 2m(⌈log₂ n⌉ + 2), the
    /// time and the peak memory of each; --svg draws it.
    #[arg(long, conflicts_with_all = ["file", "faults", "trace", "seed", "delivery"])]
    pub scale: bool,
    /// With --scale: the node counts, comma-separated (`10k` and `1M` allowed).
    #[arg(long, value_name = "N,N,…", requires = "scale", value_delimiter = ',',
          default_value = "1k,10k,100k", value_parser = node_count)]
    pub sizes: Vec<usize>,
    /// With --scale: the graphs' average degree.
    #[arg(long, value_name = "D", requires = "scale", default_value_t = 4.0)]
    pub degree: f64,
    /// With --scale: also draw the table as an SVG picture into this file.
    #[arg(long, value_name = "OUT.svg", requires = "scale")]
    pub svg: Option<PathBuf>,
    /// With `--seeds`: threads to run on (default: one per core).
    #[arg(long, value_name = "N", requires = "seeds",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,
}

/// A node count for --sizes: `1000`, `10k` or `1M` (at least 10).
fn node_count(text: &str) -> Result<usize, String> {
    let bad = || format!("{text:?} is not a node count: write 1000, 10k or 1M (at least 10)");
    let t = text.trim();
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        _ => (t, 1),
    };
    let n: usize = digits.parse().map_err(|_| bad())?;
    let n = n.checked_mul(factor).ok_or_else(bad)?;
    if n < 10 {
        return Err(bad());
    }
    Ok(n)
}

/// `A..B` (B left out) or `A..=B`: a non-empty range of seeds.
fn seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || {
        format!("{text:?} is not a range of seeds: write A..B (B left out) or A..=B, e.g. 0..1000")
    };
    let (a, b, inclusive) = if let Some((a, b)) = text.split_once("..=") {
        (a, b, true)
    } else if let Some((a, b)) = text.split_once("..") {
        (a, b, false)
    } else {
        return Err(bad());
    };
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive {
        b.checked_add(1).ok_or_else(bad)?
    } else {
        b
    };
    if end <= a {
        return Err(format!(
            "{text:?} holds no seed: the end must be above the start"
        ));
    }
    Ok(a..end)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryArg {
    /// Unit delays: synchronous rounds.
    Sync,
    /// Random delays from --seed, FIFO per link.
    Async,
}

impl DeliveryArg {
    /// The simulator's value.
    pub fn delivery(self) -> labctl_sim::Delivery {
        match self {
            DeliveryArg::Sync => labctl_sim::Delivery::Sync,
            DeliveryArg::Async => labctl_sim::Delivery::Async,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// A topology file (TOML), or the name of a lab: then its topology, and with `--format svg`
    /// its live spanning tree and roles when the lab answers.
    #[arg(value_name = "FILE|NAME")]
    pub target: PathBuf,
    /// `ascii`: an adjacency listing for the terminal; `dot`: Graphviz (pipe into `dot -Tsvg`);
    /// `svg`: a picture (nodes on a circle, tree edges bold, nodes coloured by role).
    #[arg(long, value_enum, default_value_t = GraphFormat::Ascii)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Adjacency listing.
    Ascii,
    /// Graphviz DOT.
    Dot,
    /// An SVG picture.
    Svg,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The topology file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where the lab runs: `docker` puts every daemon in its own container and every topology
    /// link on its own network; `process` starts local processes on loopback ports; `auto` picks
    /// Docker whenever an engine answers, else processes.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Auto)]
    pub runtime: RuntimeArg,
    /// The lab's name (default: the topology's); lets one topology run twice side by side.
    #[arg(long)]
    pub name: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the lab to converge.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// When a chat write is acknowledged (SPEC §4): `majority` once a strict majority of the
    /// lab's nodes hold it (no acknowledged write is lost while a majority survives); `replicas`
    /// once the writer and every persistence replica hold it (faster, and it can lose
    /// acknowledged writes); `writer` once the writer holds it. Default: the topology file's
    /// `[lab] durability`, else `majority`.
    #[arg(long, value_parser = durability_parser())]
    pub durability: Option<Durability>,
    /// Start the lab even when labctl estimates it will not fit this machine (memory, tasks).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// The topology file (TOML), or a running lab's name.
    #[arg(value_name = "FILE|NAME")]
    pub file: PathBuf,
    /// Seed for the random message delays of `--delivery async`.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// How links deliver (as `labctl sim`).
    #[arg(long, value_enum, default_value_t = DeliveryArg::Sync)]
    pub delivery: DeliveryArg,
    /// Wait for Enter between steps (on a terminal).
    #[arg(long)]
    pub step: bool,
    /// Write the replay page here instead of printing the steps.
    #[arg(long, value_name = "OUT.html", conflicts_with = "json")]
    pub html: Option<PathBuf>,
    /// Write each step's picture as an SVG file into this folder instead (created if missing):
    /// `epoch-E-setup.svg`, `epoch-E-iteration-I-down.svg`, `epoch-E-iteration-I-up.svg`,
    /// `epoch-E-tree.svg`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["json", "html", "step"])]
    pub svg: Option<PathBuf>,
    /// Print the story as one JSON object instead: `elections` (each epoch's members, links,
    /// setup count, iterations with every node's part, the values down and answers up, the
    /// leader, the SHOUT+ tree and the roles) and `missing` (nodes whose record is gone).
    #[arg(long, conflicts_with = "step")]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// The lab (default: the only lab there is).
    pub name: Option<String>,
    /// The port on 127.0.0.1 (0: any free one).
    #[arg(long, default_value_t = 7070)]
    pub port: u16,
}

#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// The scenario file (TOML; see `scenarios/` and SPEC §8).
    #[arg(value_name = "SCENARIO.toml", required_unless_present = "check")]
    pub scenario: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Where the lab runs (over the scenario's `runtime`; default auto).
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// Leave the lab running after the run (its folder then keeps the run's).
    #[arg(long)]
    pub keep: bool,
    /// Check a recorded `history.jsonl` again, alone, starting nothing (the `scenario.toml`
    /// beside it, if any, gives its `[check]` settings).
    #[arg(long, value_name = "HISTORY", conflicts_with_all = ["scenario", "runtime", "keep"])]
    pub check: Option<PathBuf>,
}

/// The core's one durability type ([`Durability`]), read from its words, with the words listed in
/// `--help` and in the error for any other word.
fn durability_parser() -> impl clap::builder::TypedValueParser<Value = Durability> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["majority", "replicas", "writer"]).map(|word| {
        word.parse::<Durability>()
            .expect("one of the possible values")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// Docker when an engine answers, else local processes.
    Auto,
    /// Containers on per-link networks, through the Docker engine.
    Docker,
    /// Local processes on loopback ports.
    Process,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The lab (may be left out while exactly one lab exists).
    pub name: Option<String>,
    /// Print the report as one JSON object (with --watch: one per line).
    #[arg(long)]
    pub json: bool,
    /// Keep reporting, once a second, until interrupted.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The lab (may be left out while exactly one lab exists).
    #[arg(conflicts_with = "all")]
    pub name: Option<String>,
    /// Remove every lab.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Print one JSON object per lab, one per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The lab (`labctl ls` lists them).
    pub name: String,
    /// The node's id.
    pub node: u64,
    /// Run as root inside the node's container (Docker labs), e.g. for busybox's ping as a user
    /// other than root.
    #[arg(long)]
    pub root: bool,
    /// A command to run instead of an interactive shell, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The lab (`labctl ls` lists them).
    pub name: String,
    /// One daemon: a node id (`3` or `node-3`), `bootstrap` or `nameserver` (default: all of them,
    /// merged in time order, each line prefixed by its daemon).
    pub node: Option<String>,
    /// Keep printing what is logged from now on, until interrupted or the lab is removed.
    #[arg(long, short)]
    pub follow: bool,
    /// Print only the last N lines (of each daemon's log) first.
    #[arg(long, short = 'n', value_name = "N")]
    pub lines: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the image the Docker runtime runs its daemons in; prints its tag.
    ///
    /// The image is built `FROM scratch`: it holds this labctl (at /labctl, the entrypoint),
    /// stripped of its debug information (`strip --strip-debug`), the dynamic loader and the
    /// shared libraries it links at their own paths (as `ldd` lists them; none for a static
    /// labctl), busybox with a link in /bin for every applet (a shell with ip, ping, nc, wget) and
    /// the page templates (at /templates), so no base image is pulled, no registry is needed and
    /// nothing is compiled again. It is built through the Docker engine's API (no `docker` CLI)
    /// with the classic builder. The tag, `labctl:<16 hex digits>`, is a hash of the image's
    /// files, so an unchanged build reuses the image; it is also tagged `labctl:latest`. `labctl
    /// up --runtime docker` does all this by itself when needed.
    Build(ImageBuildArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImageBuildArgs {
    /// Build the image again even if one with the same content exists, without the engine's
    /// build cache; the image it replaces is removed unless a container still uses it.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub command: ExportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A Docker Compose file running the lab as the Docker runtime would: the same containers,
    /// networks (one per topology link, one uplink per node), names and labels. Run it with
    /// `docker compose up`, or across machines with `docker stack deploy`.
    Compose(ExportComposeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportComposeArgs {
    /// The topology file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The lab's name (default: the topology's).
    #[arg(long)]
    pub name: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The address block the lab's networks take their /28 subnets from, e.g. 10.210.0.0/19
    /// (one /28 per node, per link and one more; a /19 holds 512). Without it, the first /19 of
    /// 10.210.0.0/16 (or $LABCTL_DOCKER_POOL) that no network of the Docker engine uses at export
    /// time, or 10.210.0.0/19 when no engine answers.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// The host port of the nameserver's HTTP (where a browser starts; `$LABCTL_HTTP_PORT`
    /// overrides it when the file runs); node k's chat, in id order, is published at PORT + k.
    #[arg(long, value_name = "PORT", default_value_t = crate::runtime::docker::plan::COMPOSE_HTTP_PORT)]
    pub http_port: u16,
}

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub command: DaemonCommand,
}

// Parsed once per daemon process: boxing the larger variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// The bootstrap server.
    Bootstrap(BootstrapDaemonArgs),
    /// The nameserver.
    Nameserver(NameserverDaemonArgs),
    /// One node.
    Node(NodeDaemonArgs),
    /// Try to open a TCP connection to each target and print one JSON line per target (tests of
    /// a lab's network isolation run it inside a node's network namespace).
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// `host:port` targets, tried at once.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// How long one attempt (name lookup and connect) may take, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub timeout_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct BootstrapDaemonArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Folder for the persisted state.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Load this topology (the TOML of a topology file) at start, as `labctl up` loads it over
    /// gRPC: it replaces a persisted one, keeping the registrations of nodes it still has.
    #[arg(long, value_name = "TEXT")]
    pub topology_toml: Option<String>,
    /// Write {pid, grpc} here once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Log here instead of stderr.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct NameserverDaemonArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub grpc: String,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub http: String,
    /// Interval between health checks of input nodes, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub health_interval_ms: u64,
    /// Write {pid, grpc, http} here once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Log here instead of stderr.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct NodeDaemonArgs {
    /// The node's id.
    #[arg(long)]
    pub id: u64,
    /// The lab's name.
    #[arg(long)]
    pub lab: String,
    /// The bootstrap's gRPC address.
    #[arg(long)]
    pub bootstrap: String,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: String,
    /// Address others use to reach this node (default: --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Address browsers and the nameserver use to reach the chat service (default: --advertise).
    /// `auto`: this host's address on the interface that faces the nameserver.
    #[arg(long, value_name = "HOST|auto")]
    pub advertise_http: Option<String>,
    /// Where browsers reach the chat service when that is not --advertise-http and the HTTP port
    /// (a port published on the host): the nameserver sends clients there, and the node's status
    /// reports it. Default: the advertised address.
    #[arg(long, value_name = "HOST:PORT")]
    pub public_http: Option<String>,
    /// ZeroMQ control port (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub control_port: u16,
    /// Admin gRPC port (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub admin_port: u16,
    /// Heartbeat interval, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_ms: u64,
    /// Silence before a neighbour is suspected, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub suspicion_ms: u64,
    /// How long to try reaching the bootstrap and learning the neighbours, in seconds.
    #[arg(long, default_value_t = 60)]
    pub join_timeout_secs: u64,
    /// Wait (up to --join-timeout-secs) until this network interface is up before starting: in
    /// a Docker lab wired with veth pairs, labctl makes the node's interfaces after the
    /// container starts, its uplink last.
    #[arg(long, value_name = "NAME")]
    pub await_interface: Option<String>,
    /// Folder for the node's database.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The nameserver's gRPC address (input nodes register there).
    #[arg(long)]
    pub nameserver: Option<String>,
    /// HTTP port of the chat service when an input node (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub http_port: u16,
    /// File holding the lab-wide session key (default: the UTF-8 bytes of the environment
    /// variable LABCTL_SESSION_SECRET, at least 16 of them).
    #[arg(long)]
    pub session_secret_file: Option<PathBuf>,
    /// Load page templates from this folder instead of the built-in ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// `majority`, `replicas` or `writer`.
    #[arg(long, default_value = "majority", value_parser = durability_parser())]
    pub durability: Durability,
    /// Write {id, pid, control, admin} here once listening.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Log here instead of stderr.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, clap::Args)]
pub struct BenchFailoverArgs {
    /// The lab (default: the only lab there is).
    pub name: Option<String>,
    /// How many failovers to time.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub runs: u32,
    /// Seconds a run may take to converge before it counts as failed.
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
    /// Seconds to rest between runs. Nodes damp a link that fails again soon after it came back
    /// (its hold doubles while it keeps failing within 5 suspicion timeouts), so runs close
    /// together would time the damping, not the failover.
    #[arg(long, default_value_t = 5)]
    pub rest: u64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load the chat service (SPEC §5) of a running lab with private messages and report.
    ///
    /// Every client registers its own user (`bench<k>` with a random tag), logs in, and then, until
    /// --duration runs out, either sends a private message to the next client's user (with
    /// probability --writes) or reads that conversation. Clients find the input nodes through the
    /// lab's nameserver. With `--via inputs` (the default) each client asks the nameserver once
    /// for the live input nodes (`GET /_nameserver/inputs`) and then talks to one of them directly,
    /// client k to input k mod (number of inputs), so the load is spread over all input nodes when
    /// there are at least as many clients as inputs; with `--via nameserver` every request goes to
    /// the nameserver and follows its 307 redirect (round robin, one extra hop per request).
    ///
    /// Prints reads/s and writes/s, p50/p90/p99/max latency of each, the errors by HTTP status or
    /// transport failure (all counted, none retried), and how many requests each input node
    /// served. Exit code 1 when more than 1% of the requests failed.
    Http(BenchHttpArgs),
    /// Time failovers: kill the writer of a running lab, time until a neighbour suspects it and
    /// until the survivors have converged in a new epoch, restart it, and again.
    ///
    /// Each run waits for the lab to be whole and converged, kills the quorum's root (as
    /// `labctl fault kill leader` does), polls every node's admin API every 10 ms, then restarts
    /// the node and waits for the lab to come back to one tree. Prints each figure's median, 90th
    /// percentile and worst. Exit code 1 when a run did not converge within --timeout.
    Failover(BenchFailoverArgs),
    /// Time the dashboard (SPEC §9): from a state change in a node to the dashboard's event.
    ///
    /// Serves the lab's dashboard in-process, reads its server-sent events as a browser does, and
    /// follows every node's trace. Each run kills the writer and times, from the last node taking
    /// its roles in the new epoch (its trace event, on the node's clock) to the arrival of the
    /// first `report` event showing the lab converged under a new writer; then restarts the node
    /// and times the same for the lab whole again. Prints the median, 90th percentile and worst
    /// (goal: 300 ms). Exit code 1 when a run did not converge within --timeout.
    Dashboard(BenchDashboardArgs),
}

#[derive(Debug, clap::Args)]
pub struct BenchDashboardArgs {
    /// The lab (default: the only lab there is).
    pub name: Option<String>,
    /// How many kill-and-restart runs (two figures each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Seconds a change may take to show before the run counts as failed.
    #[arg(long, default_value_t = 15)]
    pub timeout: u64,
    /// Seconds to rest between runs (a link that fails again soon is damped; see `bench failover`).
    #[arg(long, default_value_t = 5)]
    pub rest: u64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchHttpArgs {
    /// The lab (may be left out while exactly one lab exists).
    pub name: Option<String>,
    /// Concurrent clients, each with its own user, session cookie and connection.
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// Seconds of load (registration and login come before and are not measured).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Percentage of requests that are writes (send a message); the rest read the conversation.
    #[arg(long, default_value_t = 20, value_name = "PERCENT",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub writes: u8,
    /// How clients reach the input nodes: `inputs` pins each client to one input node listed by
    /// the nameserver; `nameserver` sends every request to the nameserver and follows its 307.
    #[arg(long, value_enum, default_value_t = BenchVia::Inputs)]
    pub via: BenchVia,
    /// Seed of the clients' choices (read or write) and their users' tags: same seed, same
    /// sequence of requests.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// Seconds to wait for the nameserver to list a live input node, and then for each
    /// client's input node to know the user it writes to, before giving up.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub wait: u64,
    /// Open loop: send N requests per second in all, on a fixed schedule, whether or not the
    /// earlier ones were answered (round robin over the clients' sessions), and measure each
    /// latency from its scheduled time. Without it, a closed loop: each client waits for its
    /// answer before the next request (the saturation throughput).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: Option<u32>,
    /// What a read asks for: `new`, the messages after the last one the client read (`GET
    /// …/chat?after=<uuid>`, as the conversation page polls); `whole`, the whole conversation,
    /// which grows through the run, and each read's cost with it.
    #[arg(long, value_enum, default_value_t = BenchReads::New)]
    pub reads: BenchReads,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchReads {
    /// The messages after the last one read.
    New,
    /// The whole conversation.
    Whole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchVia {
    /// Each client talks directly to one live input node, round robin over clients.
    Inputs,
    /// Every request goes to the nameserver and follows its 307 to an input node.
    Nameserver,
}
