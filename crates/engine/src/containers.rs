//! One view over the three container lists of a pod spec, so each rule is
//! written once for containers, init containers and ephemeral containers.

use super::report::{ContainerKind, Target};
use k8s_openapi::api::core::v1::{Container, ContainerPort, EphemeralContainer, PodSpec, SecurityContext};

/// What the rules need from any container.
pub trait ContainerLike {
    fn name(&self) -> &str;
    /// The image reference as written (empty when absent).
    fn image(&self) -> &str;
    fn security_context(&self) -> Option<&SecurityContext>;
    fn security_context_mut(&mut self) -> &mut Option<SecurityContext>;
    fn ports(&self) -> &[ContainerPort];
    /// Raw block devices, which user namespaces cannot map.
    fn uses_volume_devices(&self) -> bool;
}

macro_rules! container_like {
    ($ty:ty) => {
        impl ContainerLike for $ty {
            fn name(&self) -> &str {
                &self.name
            }
            fn image(&self) -> &str {
                self.image.as_deref().unwrap_or_default()
            }
            fn security_context(&self) -> Option<&SecurityContext> {
                self.security_context.as_ref()
            }
            fn security_context_mut(&mut self) -> &mut Option<SecurityContext> {
                &mut self.security_context
            }
            fn ports(&self) -> &[ContainerPort] {
                self.ports.as_deref().unwrap_or_default()
            }
            fn uses_volume_devices(&self) -> bool {
                self.volume_devices.as_ref().is_some_and(|d| !d.is_empty())
            }
        }
    };
}

container_like!(Container);
container_like!(EphemeralContainer);

/// Where a container sits in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub kind: ContainerKind,
    pub index: usize,
}

/// Every container of a pod spec in spec order: init containers, containers,
/// ephemeral containers.
pub fn all(spec: &PodSpec) -> impl Iterator<Item = (Slot, &dyn ContainerLike)> {
    let init = spec.init_containers.iter().flatten().map(|c| c as &dyn ContainerLike);
    let main = spec.containers.iter().map(|c| c as &dyn ContainerLike);
    let eph = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|c| c as &dyn ContainerLike);
    with_slots(ContainerKind::InitContainers, init)
        .chain(with_slots(ContainerKind::Containers, main))
        .chain(with_slots(ContainerKind::EphemeralContainers, eph))
}

fn with_slots<'a>(
    kind: ContainerKind,
    it: impl Iterator<Item = &'a dyn ContainerLike>,
) -> impl Iterator<Item = (Slot, &'a dyn ContainerLike)> {
    it.enumerate().map(move |(index, c)| (Slot { kind, index }, c))
}

pub fn get(spec: &PodSpec, slot: Slot) -> Option<&dyn ContainerLike> {
    match slot.kind {
        ContainerKind::InitContainers => spec.init_containers.as_ref()?.get(slot.index).map(|c| c as _),
        ContainerKind::Containers => spec.containers.get(slot.index).map(|c| c as _),
        ContainerKind::EphemeralContainers => spec.ephemeral_containers.as_ref()?.get(slot.index).map(|c| c as _),
    }
}

/// The full `Container` in this slot; `None` for ephemeral containers, which
/// have no probes or lifecycle handlers.
pub fn get_container(spec: &PodSpec, slot: Slot) -> Option<&Container> {
    match slot.kind {
        ContainerKind::InitContainers => spec.init_containers.as_ref()?.get(slot.index),
        ContainerKind::Containers => spec.containers.get(slot.index),
        ContainerKind::EphemeralContainers => None,
    }
}

pub fn get_mut(spec: &mut PodSpec, slot: Slot) -> Option<&mut dyn ContainerLike> {
    match slot.kind {
        ContainerKind::InitContainers => spec.init_containers.as_mut()?.get_mut(slot.index).map(|c| c as _),
        ContainerKind::Containers => spec.containers.get_mut(slot.index).map(|c| c as _),
        ContainerKind::EphemeralContainers => spec.ephemeral_containers.as_mut()?.get_mut(slot.index).map(|c| c as _),
    }
}

pub fn target(slot: Slot, c: &dyn ContainerLike) -> Target {
    Target::container(slot.kind, c.name())
}
