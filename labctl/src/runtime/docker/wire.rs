//! Veth pairs between containers' network namespaces ([`Links::Veth`](super::plan::Links)), made
//! over netlink as `ip link add … type veth peer …` does, and cut and healed by setting both ends
//! down or up.
//!
//! A pair is made in one message from labctl's own namespace, each end named and placed straight
//! into its container's namespace (by the pid of the container's first process). Addresses and
//! `up` are set from inside each namespace: a thread of its own enters it (`setns`), opens a
//! netlink socket there, does its work and ends, so no other thread of labctl ever leaves the
//! host's namespace. The pairs need no removal: a namespace takes its interfaces with it when its
//! container stops, and a veth whose one end goes, goes whole.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};
use rustix::io::Errno;
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::plan::{Cidr, VethEnd, VethPlan};

/// What to do to one interface inside a namespace.
#[derive(Clone, Debug)]
pub enum Step {
    /// Give it its address and set it up (or leave it down, for a link cut now).
    Configure {
        interface: String,
        address: Ipv4Addr,
        prefix: u8,
        up: bool,
    },
    /// Set it up or down.
    Set { interface: String, up: bool },
    /// Route `network` nowhere ("unreachable"): the lab's whole block, so that an address of
    /// it not on a link of this namespace is refused here, instead of leaving by the default
    /// route (through the host) for the world.
    Fence { network: Cidr },
}

impl Step {
    /// The configuration of one planned end.
    pub fn configure(end: &VethEnd, prefix: u8, up: bool) -> Step {
        Step::Configure {
            interface: end.interface.clone(),
            address: end.address,
            prefix,
            up,
        }
    }
}

/// The errno the kernel gave a failed netlink request, if it gave one.
fn errno(error: &rtnetlink::Error) -> Option<Errno> {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            message.code.map(|c| Errno::from_raw_os_error(-c.get()))
        }
        _ => None,
    }
}

/// Make the pair `veth` between the namespaces of `pids` (its two ends' containers' first
/// processes). An end of the same name left in the first namespace (a pair made before whose
/// other end's container restarted) is removed first.
pub async fn make(veth: &VethPlan, pids: [u32; 2]) -> Result<()> {
    let [near, far] = &veth.ends;
    let peer = LinkUnspec::new_with_name(&far.interface)
        .setns_by_pid(pids[1])
        .build();
    let message = LinkVeth::new(&near.interface, &far.interface)
        .setns_by_pid(pids[0])
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening a netlink socket to make veth pairs")?;
    let task = tokio::spawn(connection);
    let result = handle.link().add(message.clone()).execute().await;
    let result = match result {
        // EEXIST: an end of that name is still there: the old pair of a container that
        // restarted, whose namespace the kernel has not taken down yet. Take the old ends away
        // and make the pair anew.
        Err(e) if errno(&e) == Some(Errno::EXIST) => {
            for (end, &pid) in veth.ends.iter().zip(&pids) {
                let step = Step::Set {
                    interface: end.interface.clone(),
                    up: false,
                };
                in_namespace(pid, vec![step], true).await?;
            }
            handle.link().add(message).execute().await
        }
        other => other,
    };
    task.abort();
    result.map_err(|e| {
        anyhow!(
            "making the veth pair {}:{} – {}:{}: {e}{}",
            near.container,
            near.interface,
            far.container,
            far.interface,
            if errno(&e) == Some(Errno::PERM) {
                " (making links needs root; run labctl as root, or set LABCTL_DOCKER_LINKS=networks \
                 for one Docker network per link)"
            } else {
                ""
            }
        )
    })
}

/// Do `steps` inside the network namespace of process `pid`, in order. With `remove`, the
/// interfaces named in `Set` steps are deleted instead (quietly, if already gone).
pub async fn in_namespace(pid: u32, steps: Vec<Step>, remove: bool) -> Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("netns-{pid}"))
        .spawn(move || {
            let _ = tx.send(run_in_namespace(pid, steps, remove));
        })
        .context("starting a thread to enter a container's network namespace")?;
    rx.await
        .map_err(|_| anyhow!("the thread in process {pid}'s network namespace died"))?
}

/// The body of [`in_namespace`], on a thread of its own that ends with it.
fn run_in_namespace(pid: u32, steps: Vec<Step>, remove: bool) -> Result<()> {
    use std::os::fd::AsFd;
    let path = format!("/proc/{pid}/ns/net");
    let namespace = std::fs::File::open(&path)
        .with_context(|| format!("opening {path} (is the container still running?)"))?;
    // It changes only this thread, which ends when this function returns.
    move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network))
        .with_context(|| format!("entering the network namespace of process {pid}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("a runtime for netlink")?;
    runtime.block_on(async move {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening a netlink socket")?;
        tokio::spawn(connection);
        for step in steps {
            run_step(&handle, &step, remove)
                .await
                .with_context(|| format!("in process {pid}'s namespace: {step:?}"))?;
        }
        Ok(())
    })
}

async fn index_of(handle: &Handle, interface: &str) -> Result<Option<u32>> {
    let mut links = handle
        .link()
        .get()
        .match_name(interface.to_string())
        .execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(e) if errno(&e) == Some(Errno::NODEV) => Ok(None),
        Err(e) => Err(anyhow!("looking up interface {interface}: {e}")),
    }
}

async fn run_step(handle: &Handle, step: &Step, remove: bool) -> Result<()> {
    match step {
        Step::Configure {
            interface,
            address,
            prefix,
            up,
        } => {
            let index = index_of(handle, interface)
                .await?
                .with_context(|| format!("no interface {interface}"))?;
            match handle
                .address()
                .add(index, IpAddr::V4(*address), *prefix)
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(Errno::EXIST) => {}
                Err(e) => bail!("adding {address}/{prefix} to {interface}: {e}"),
            }
            set(handle, index, interface, *up).await
        }
        Step::Fence { network } => {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(network.host(0), network.prefix)
                .kind(RouteType::Unreachable)
                .build();
            match handle.route().add(route).execute().await {
                Ok(()) => Ok(()),
                Err(e) if errno(&e) == Some(Errno::EXIST) => Ok(()),
                Err(e) => Err(anyhow!("routing {network} nowhere: {e}")),
            }
        }
        Step::Set { interface, up } => {
            let Some(index) = index_of(handle, interface).await? else {
                // Gone with its peer's namespace: nothing to cut, nothing to remove.
                return Ok(());
            };
            if remove {
                return match handle.link().del(index).execute().await {
                    Ok(()) => Ok(()),
                    Err(e) if errno(&e) == Some(Errno::NODEV) => Ok(()),
                    Err(e) => Err(anyhow!("removing {interface}: {e}")),
                };
            }
            set(handle, index, interface, *up).await
        }
    }
}

async fn set(handle: &Handle, index: u32, interface: &str, up: bool) -> Result<()> {
    let message = LinkUnspec::new_with_index(index);
    let message = if up { message.up() } else { message.down() };
    handle
        .link()
        .set(message.build())
        .execute()
        .await
        .map_err(|e| {
            anyhow!(
                "setting {interface} {}: {e}",
                if up { "up" } else { "down" }
            )
        })
}

/// Make `veths` between running containers (`pids` by container name) and configure both ends
/// of each: first every pair, then every namespace but the hub's, in parallel, then the hub's
/// (`hub`): a node waits for its uplink, which is up only once the hub's end is, and by then its
/// links are up too. A pair in `down` is made but left down (a link cut in force). Every
/// namespace routes the rest of the lab's `block` nowhere ([`Step::Fence`]).
pub async fn wire(
    veths: &[&VethPlan],
    pids: &BTreeMap<String, u32>,
    hub: &str,
    block: Cidr,
    down: &(dyn Fn(&VethPlan) -> bool + Sync),
) -> Result<()> {
    let pid = |container: &str| -> Result<u32> {
        pids.get(container)
            .copied()
            .filter(|&p| p > 0)
            .with_context(|| format!("container {container} is not running"))
    };
    let mut steps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    for veth in veths {
        make(
            veth,
            [pid(&veth.ends[0].container)?, pid(&veth.ends[1].container)?],
        )
        .await?;
        let up = !down(veth);
        for end in &veth.ends {
            steps
                .entry(end.container.clone())
                .or_insert_with(|| vec![Step::Fence { network: block }])
                .push(Step::configure(end, veth.subnet.prefix, up));
        }
    }
    let hub_steps = steps.remove(hub);
    let jobs = steps
        .into_iter()
        .map(|(container, steps)| {
            let pid = pid(&container);
            async move { in_namespace(pid?, steps, false).await }
        })
        .collect::<Vec<_>>();
    for result in futures_util::future::join_all(jobs).await {
        result?;
    }
    if let Some(steps) = hub_steps {
        in_namespace(pid(hub)?, steps, false).await?;
    }
    Ok(())
}
