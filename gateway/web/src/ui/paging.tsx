// Paging through a list by opaque page tokens (docs/api.md): the tokens of
// the pages seen, so Previous goes back; only the latest request's answer is
// shown, whatever order answers arrive in; a failed request shows its error
// instead of a stale page.
import { useEffect, useRef, useState } from "preact/hooks";

/** One page of a list and the token of the next ("" after the last). */
export interface Page<T> {
  items: T[];
  next: string;
}

/** The page shown, its error, whether a request is out, and the pager's buttons. */
export interface Paging<T> {
  page: Page<T> | undefined;
  error: unknown;
  loading: boolean;
  pager: preact.JSX.Element;
}

/** Loads the first page whenever `deps` change, and the others on the pager's buttons. */
export function usePages<T>(fetch: (token: string) => Promise<Page<T>>, deps: unknown[]): Paging<T> {
  const [tokens, setTokens] = useState<string[]>([""]);
  const [page, setPage] = useState<Page<T>>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(false);
  const seq = useRef(0);
  const load = (token: string) => {
    const mine = ++seq.current;
    setLoading(true);
    fetch(token)
      .then((p) => mine === seq.current && (setPage(p), setError(undefined)))
      .catch((e) => mine === seq.current && (setError(e), setPage(undefined)))
      .finally(() => mine === seq.current && setLoading(false));
  };
  useEffect(() => {
    setTokens([""]);
    load("");
  }, deps);
  const go = (seen: string[]) => {
    setTokens(seen);
    load(seen[seen.length - 1]);
  };
  const pager = (
    <div class="pager">
      <button type="button" disabled={tokens.length <= 1 || loading} onClick={() => go(tokens.slice(0, -1))}>
        Previous page
      </button>
      <span data-testid="page-number">Page {tokens.length}</span>
      <button type="button" disabled={!page?.next || loading} onClick={() => page && go([...tokens, page.next])}>
        Next page
      </button>
    </div>
  );
  return { page, error, loading, pager };
}
