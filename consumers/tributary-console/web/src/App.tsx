import { useState } from "react";
import { api, call, session } from "./api/client";
import { href, useRoute } from "./route";
import { ErrorBox } from "./ui";
import { Companies } from "./pages/Companies";
import { Company } from "./pages/Company";
import { Records } from "./pages/Records";
import { RecordPage } from "./pages/Record";
import { DeadLetters } from "./pages/DeadLetters";
import { Webhooks } from "./pages/Webhooks";
import { Pipeline } from "./pages/Pipeline";

export function App() {
  const [signedIn, setSignedIn] = useState(session.key() !== null);
  const route = useRoute();
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  const section = route[0] ?? "companies";
  const nav = [
    ["companies", "Companies"],
    ["dead-letters", "Dead letters"],
    ["webhooks", "Webhooks"],
    ["pipeline", "Pipeline"],
  ];
  return (
    <>
      <header className="top">
        <a className="brand" href={href("companies")}>
          Tributary
        </a>
        <nav>
          {nav.map(([id, label]) => (
            <a key={id} href={href(id)} aria-current={section === id ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <button
          className="link"
          onClick={() => {
            session.signOut();
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main>
        <Page route={route} />
      </main>
    </>
  );
}

function Page({ route }: { route: string[] }) {
  const [section, id, part, type, record] = route;
  switch (section ?? "companies") {
    case "companies":
      if (!id) return <Companies />;
      if (part === "records" && type && record) return <RecordPage company={id} dataType={type} id={record} />;
      if (part === "records" && type) return <Records company={id} dataType={type} />;
      return <Company company={id} />;
    case "dead-letters":
      return <DeadLetters />;
    case "webhooks":
      return <Webhooks selected={id} />;
    case "pipeline":
      return <Pipeline />;
    default:
      return <p>No such page. <a href={href("companies")}>Companies</a></p>;
  }
}

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main className="sign-in">
      <h1>Tributary</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          session.signIn(key.trim());
          call(api.GET("/v1/companies"))
            .then(() => onSignedIn())
            .catch((err) => {
              session.signOut();
              setError(err);
            })
            .finally(() => setBusy(false));
        }}
      >
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          placeholder="the key from tributary-data/api-key"
          required
        />
        <button type="submit" disabled={busy || key.trim() === ""}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="muted">The key stays in this tab only (session storage) and is sent to this server alone.</p>
        <ErrorBox error={error} />
      </form>
    </main>
  );
}
