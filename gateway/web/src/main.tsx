// The Operations Center page: shell, sign-in and routes. Each screen lives in
// screens/ with its API calls at the top of its module.
import { render } from "preact";
import { useState } from "preact/hooks";
import { getToken, identity, setToken, type Identity } from "./api/client.js";
import { Link, Section } from "./ui/common.js";
import { navigate, useLocation } from "./ui/router.js";
import { HistoryScreen } from "./screens/history.js";
import { CatalogScreen } from "./screens/catalog.js";
import { NewImportScreen } from "./screens/new-import.js";
import { ImportScreen } from "./screens/import.js";
import { PauseScreen } from "./screens/pauses.js";
import { DeveloperScreen } from "./screens/developer.js";
import "./styles.css";

function SignIn(props: { onSignIn: (who: Identity) => void }) {
  const [token, setValue] = useState("");
  const [problem, setProblem] = useState("");
  const submit = (e: Event) => {
    e.preventDefault();
    const t = token.trim().replace(/^Bearer\s+/i, "");
    const who = identity(t);
    if (!who) return setProblem("That is not a bearer token (a JWT has three parts separated by dots).");
    if (who.exp && who.exp * 1000 < Date.now()) return setProblem("That token has expired; print a new one.");
    setToken(t);
    props.onSignIn(who);
  };
  return (
    <main class="signin">
      <Section title="Sign in to Data Imports" id="signin">
        <form onSubmit={submit}>
          <p>
            Paste a bearer token. For development, print one with <code>passare-imports token</code> (add{" "}
            <code>--developer</code>, or <code>--not-super-admin --org 1042</code> for a funeral home's user). It is kept in this tab only
            (sessionStorage) and sent as the <code>authorization</code> header, never in a URL.
          </p>
          <label class="field">
            <span>Bearer token</span>
            <textarea name="token" rows={4} value={token} onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)} autofocus />
          </label>
          {problem && (
            <div class="error" role="alert">
              {problem}
            </div>
          )}
          <button type="submit" class="primary">
            Sign in
          </button>
        </form>
      </Section>
    </main>
  );
}

function Menu(props: { who: Identity; path: string }) {
  const item = (href: string, label: string, active: boolean) => (
    <li>
      <Link href={href} class={active ? "active" : ""}>
        {label}
      </Link>
    </li>
  );
  const p = props.path;
  const manage = props.who.superAdmin || props.who.developer;
  return (
    <nav class="menu" aria-label="Main">
      <div class="brand">Passare</div>
      <div class="menu-group">Operations Center</div>
      <ul>
        <li>
          <Link href="/imports" class={p.startsWith("/imports") ? "active top" : "top"}>
            Data Imports
          </Link>
          <ul>
            {item("/imports", "History", p === "/imports" || p === "/")}
            {manage && item("/imports/new", "New import", p === "/imports/new")}
            {item("/imports/catalog", "Import types", p === "/imports/catalog")}
            {manage && item("/imports/pauses", "Pause switch", p === "/imports/pauses")}
            {props.who.developer && item("/imports/failures", "Chunk failures", p === "/imports/failures")}
          </ul>
        </li>
      </ul>
    </nav>
  );
}

function route(path: string, who: Identity) {
  if (path === "/" || path === "/imports") return <HistoryScreen who={who} />;
  if (path === "/imports/new") return <NewImportScreen who={who} />;
  if (path === "/imports/catalog") return <CatalogScreen />;
  if (path === "/imports/pauses") return <PauseScreen who={who} />;
  if (path === "/imports/failures") return <DeveloperScreen who={who} />;
  const m = /^\/imports\/([0-9a-fA-F-]{36})$/.exec(path);
  if (m) return <ImportScreen key={m[1]} id={m[1]} who={who} />;
  return (
    <Section title="Not found" id="not-found">
      <p>
        Nothing lives at <code>{path}</code>. <Link href="/imports">Back to Data Imports</Link>.
      </p>
    </Section>
  );
}

function App() {
  const [who, setWho] = useState<Identity | undefined>(() => identity(getToken()));
  const { path } = useLocation();
  if (!who) return <SignIn onSignIn={setWho} />;
  const role = who.developer ? "developer" : who.superAdmin ? "super admin" : `organization ${who.org || "?"} (read only)`;
  return (
    <div class="shell">
      <Menu who={who} path={path} />
      <div class="main">
        <header class="topbar">
          <div class="crumbs">
            Operations Center <span aria-hidden="true">→</span> <Link href="/imports">Data Imports</Link>
          </div>
          <div class="who" data-testid="who">
            <span>{who.name || who.id}</span> <span class="muted">· {role}</span>{" "}
            <button
              type="button"
              class="link"
              onClick={() => {
                setToken("");
                setWho(undefined);
                navigate("/imports");
              }}
            >
              Sign out
            </button>
          </div>
        </header>
        <main id="content">{route(path, who)}</main>
      </div>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
