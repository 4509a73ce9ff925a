//! The in-RAM trussed platform opcard runs on: trussed's software `virt` platform plus the two
//! backends opcard's client needs beyond trussed's core (PIN handling from trussed-auth, key
//! wrapping and chunked file I/O from trussed-staging), routed by extension id.

use trussed::backend::BackendId;
use trussed::platform::Platform;
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::ServiceResources;
use trussed::types::Context;
use trussed::virt::{self, StoreConfig};
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::api::{reply, request};
use trussed_core::types::Location;
use trussed_core::Error;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// The trussed client opcard is given.
pub type CardClient<'a> = virt::Client<'a, Backends>;

/// Run `f` with a client of a fresh in-RAM platform (nothing survives the process).
pub fn with_card_client<R>(f: impl FnOnce(CardClient<'_>) -> R) -> R {
    virt::with_platform(StoreConfig::ram(), |platform| {
        platform.run_client_with_backends("opcard", Backends::new(), ORDER, f)
    })
}

/// Backends tried in this order; core requests they do not serve fall through to trussed's core.
const ORDER: &[BackendId<Backend>] = &[
    BackendId::Custom(Backend::Staging),
    BackendId::Custom(Backend::Auth),
    BackendId::Core,
];

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Auth,
    Staging,
}

#[derive(Debug, Clone, Copy)]
pub enum Extension {
    Auth,
    WrapKeyToFile,
    Chunked,
}

impl From<Extension> for u8 {
    fn from(e: Extension) -> u8 {
        match e {
            Extension::Auth => 1,
            Extension::WrapKeyToFile => 2,
            Extension::Chunked => 3,
        }
    }
}

impl TryFrom<u8> for Extension {
    type Error = Error;
    fn try_from(id: u8) -> Result<Self, Error> {
        match id {
            1 => Ok(Extension::Auth),
            2 => Ok(Extension::WrapKeyToFile),
            3 => Ok(Extension::Chunked),
            _ => Err(Error::InternalError),
        }
    }
}

#[derive(Debug)]
pub struct Backends {
    auth: AuthBackend,
    staging: StagingBackend,
}

#[derive(Default)]
pub struct BackendContexts {
    auth: AuthContext,
    staging: StagingContext,
}

impl Backends {
    fn new() -> Self {
        Backends {
            auth: AuthBackend::new(Location::Internal, FilesystemLayout::V0),
            staging: StagingBackend::new(),
        }
    }
}

impl ExtensionDispatch for Backends {
    type BackendId = Backend;
    type Context = BackendContexts;
    type ExtensionId = Extension;

    fn extension_request<P: Platform>(
        &mut self,
        backend: &Backend,
        extension: &Extension,
        ctx: &mut Context<BackendContexts>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        match (backend, extension) {
            (Backend::Auth, Extension::Auth) => {
                <AuthBackend as ExtensionImpl<AuthExtension>>::extension_request_serialized(
                    &mut self.auth,
                    core,
                    &mut ctx.backends.auth,
                    request,
                    resources,
                )
            }
            (Backend::Staging, Extension::WrapKeyToFile) => <StagingBackend as ExtensionImpl<
                WrapKeyToFileExtension,
            >>::extension_request_serialized(
                &mut self.staging,
                core,
                &mut ctx.backends.staging,
                request,
                resources,
            ),
            (Backend::Staging, Extension::Chunked) => {
                <StagingBackend as ExtensionImpl<ChunkedExtension>>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

impl ExtensionId<AuthExtension> for Backends {
    type Id = Extension;
    const ID: Extension = Extension::Auth;
}

impl ExtensionId<WrapKeyToFileExtension> for Backends {
    type Id = Extension;
    const ID: Extension = Extension::WrapKeyToFile;
}

impl ExtensionId<ChunkedExtension> for Backends {
    type Id = Extension;
    const ID: Extension = Extension::Chunked;
}
