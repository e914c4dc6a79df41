//! One page collector for every list RPC that pages with `page_token` and
//! `next_page_token`: a test builds the first request and gets every page (or
//! every item) back, the collector follows the tokens and refuses a list that
//! never ends or hands out a token twice.

use std::collections::HashSet;
use std::future::Future;

use passare_imports_cli::client::{self, Client};
use passare_imports_proto::v1 as pb;

/// At most this many pages: a list longer than that is a paging bug.
const MAX_PAGES: usize = 1_000;

/// A request of a list RPC that pages.
pub trait PagedList: Clone + Send {
    type Item: Send;

    /// Calls the RPC once: the page's items and its `next_page_token`.
    fn call(
        self,
        client: &mut Client,
    ) -> impl Future<Output = Result<(Vec<Self::Item>, String), tonic::Status>> + Send;

    fn page_token(&self) -> &str;

    fn set_page_token(&mut self, token: String);
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The `page_token` the page was asked with (empty for the first).
    pub token: String,
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// Every page of the list `first` asks for, in order, following
/// `next_page_token` from `first`'s own `page_token`.
pub async fn pages<R: PagedList>(
    client: &mut Client,
    first: R,
) -> anyhow::Result<Vec<Page<R::Item>>> {
    let mut request = first;
    let mut out: Vec<Page<R::Item>> = Vec::new();
    let mut tokens = HashSet::new();
    loop {
        anyhow::ensure!(out.len() < MAX_PAGES, "more than {MAX_PAGES} pages");
        let token = request.page_token().to_string();
        let (items, next_page_token) = request
            .clone()
            .call(client)
            .await
            .map_err(client::describe)?;
        out.push(Page {
            token,
            items,
            next_page_token: next_page_token.clone(),
        });
        if next_page_token.is_empty() {
            return Ok(out);
        }
        anyhow::ensure!(
            tokens.insert(next_page_token.clone()),
            "page {} hands out a page token seen before",
            out.len()
        );
        request.set_page_token(next_page_token);
    }
}

/// Every item of the list `first` asks for, page after page.
pub async fn collect_all<R: PagedList>(
    client: &mut Client,
    first: R,
) -> anyhow::Result<Vec<R::Item>> {
    Ok(pages(client, first)
        .await?
        .into_iter()
        .flat_map(|p| p.items)
        .collect())
}

/// The items of each page, for comparing how a list was cut.
pub fn page_items<T: Clone>(pages: &[Page<T>]) -> Vec<Vec<T>> {
    pages.iter().map(|p| p.items.clone()).collect()
}

macro_rules! paged {
    ($request:ty, $item:ty, $rpc:ident, $items:ident) => {
        impl PagedList for $request {
            type Item = $item;

            async fn call(
                self,
                client: &mut Client,
            ) -> Result<(Vec<$item>, String), tonic::Status> {
                let page = client.$rpc(self).await?.into_inner();
                Ok((page.$items, page.next_page_token))
            }

            fn page_token(&self) -> &str {
                &self.page_token
            }

            fn set_page_token(&mut self, token: String) {
                self.page_token = token;
            }
        }
    };
}

paged!(pb::ListImportsRequest, pb::Import, list_imports, imports);
paged!(
    pb::ListChunkFailuresRequest,
    pb::ChunkFailure,
    list_chunk_failures,
    chunk_failures
);
paged!(
    pb::ListRowErrorsRequest,
    pb::RowError,
    list_row_errors,
    row_errors
);
paged!(
    pb::ListAuditEventsRequest,
    pb::AuditEvent,
    list_audit_events,
    events
);
paged!(
    pb::ListOrganizationsRequest,
    pb::Organization,
    list_organizations,
    organizations
);
