// The one grpc-web client of the page: same origin as the page (the gateway
// serves both), binary grpc-web, the bearer token as `authorization` metadata.
// The token lives in sessionStorage only: never in a URL, never in localStorage.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ImportService } from "../gen/passare/imports/v1/imports_pb.js";

const TOKEN_KEY = "passare-imports.token";

export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token: string): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => (req) => {
  const token = getToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

export const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

export type ImportClient = Client<typeof ImportService>;

export const api: ImportClient = createClient(ImportService, transport);

/** Who the token says the caller is (decoded for display; the server checks it). */
export interface Identity {
  id: string;
  name: string;
  email: string;
  superAdmin: boolean;
  developer: boolean;
  /** The organization of a plain user. */
  org: string;
  /** Seconds since the epoch. */
  exp: number;
}

export function identity(token = getToken()): Identity | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const c = JSON.parse(json) as Record<string, unknown>;
    const roles = Array.isArray(c.roles) ? (c.roles as unknown[]) : [];
    return {
      id: String(c.sub ?? ""),
      name: String(c.name ?? c.sub ?? ""),
      email: String(c.email ?? ""),
      superAdmin: c.super_admin === true,
      developer: c.developer === true || roles.includes("developer"),
      org: c.org === undefined || c.org === null ? "" : String(c.org),
      exp: Number(c.exp ?? 0),
    };
  } catch {
    return undefined;
  }
}

/** Whether the caller may change imports (super admins and developers). */
export function canManage(who: Identity | undefined): boolean {
  return !!who && (who.superAdmin || who.developer);
}
