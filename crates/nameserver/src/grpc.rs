//! The gRPC registry (`proto/nameserver.proto`): input nodes register and deregister themselves.

use std::sync::Arc;

use labctl_proto::nameserver::{
    nameserver_server::Nameserver, DeregisterReply, DeregisterRequest, InputNode, ListReply,
    ListRequest, RegisterReply,
};
use tonic::{Request, Response, Status};

use crate::address;
use crate::registry::Registry;

/// The `Nameserver` gRPC service over the shared registry.
#[derive(Debug)]
pub(crate) struct Service {
    registry: Arc<Registry>,
}

impl Service {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl Nameserver for Service {
    async fn register(
        &self,
        request: Request<InputNode>,
    ) -> Result<Response<RegisterReply>, Status> {
        let InputNode {
            id,
            http_address,
            public_address,
        } = request.into_inner();
        if id == 0 {
            return Err(Status::invalid_argument(
                "input node id must be a positive integer, got 0",
            ));
        }
        if let Err(why) = address::check(&http_address) {
            return Err(Status::invalid_argument(format!(
                "input node {id}: http_address {http_address:?} is not host:port \
                 (e.g. 127.0.0.1:8080 or node-4:8080): {why}"
            )));
        }
        // Empty means "the same as http_address" (the field is new: older nodes never send it).
        let public_address = (!public_address.is_empty()).then_some(public_address);
        if let Some(public_address) = &public_address {
            if let Err(why) = address::check(public_address) {
                return Err(Status::invalid_argument(format!(
                    "input node {id}: public_address {public_address:?} is not host:port \
                     (e.g. 127.0.0.1:8080 or node-4:8080): {why}"
                )));
            }
        }
        let public = public_address.clone().unwrap_or_default();
        match self
            .registry
            .register(id, http_address.clone(), public_address)
        {
            None => tracing::info!(id, %http_address, %public, "input node registered"),
            Some(previous) if previous == http_address => {
                tracing::debug!(id, %http_address, %public, "input node registered again")
            }
            Some(previous) => {
                tracing::info!(id, %http_address, %public, %previous, "input node moved to a new address")
            }
        }
        Ok(Response::new(RegisterReply {}))
    }

    async fn deregister(
        &self,
        request: Request<DeregisterRequest>,
    ) -> Result<Response<DeregisterReply>, Status> {
        let DeregisterRequest { id } = request.into_inner();
        match self.registry.deregister(id) {
            Some(http_address) => tracing::info!(id, %http_address, "input node deregistered"),
            None => tracing::debug!(id, "deregistering an input node that is not registered"),
        }
        Ok(Response::new(DeregisterReply {}))
    }

    async fn list(&self, _request: Request<ListRequest>) -> Result<Response<ListReply>, Status> {
        let live = self
            .registry
            .live()
            .into_iter()
            .map(|node| InputNode {
                id: node.id,
                http_address: node.http_address,
                public_address: node.public_address.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(ListReply { live }))
    }
}
