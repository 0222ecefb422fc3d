/** The login token, kept in localStorage so a reload (or a second tab) stays signed in. */

const TOKEN_KEY = "sdd.token";

export function readToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function writeToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}
