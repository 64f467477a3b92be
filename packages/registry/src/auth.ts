/**
 * Registry authentication: anonymous, basic, and bearer tokens (the token flow of the distribution spec).
 * A registry says which it wants in a 401's `WWW-Authenticate`; a token is asked for every scope an
 * operation needs at once (pull and push of the target repository, pull of a mount's source) and cached
 * until shortly before it expires. Credentials go only to the registry itself, or to a token realm over
 * https (plain http only when the registry itself is plain http, as asked); they never appear in errors.
 */
import { PermissionDeniedError, RegistryError, UnauthenticatedError, quote } from '@strata/core';
import type { CredentialSource, Credentials } from './credentials.js';
import { header, Transport, type HttpResponse } from './transport.js';

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `WWW-Authenticate` (RFC 7235): schemes with `key=value` or `key="quoted value"` parameters. */
export function parseChallenges(text: string): Challenge[] {
  const out: { scheme: string; params: Record<string, string> }[] = [];
  let i = 0;
  const n = text.length;
  const skip = () => {
    while (i < n && /[\s,]/.test(text[i]!)) i++;
  };
  while (i < n) {
    skip();
    const scheme = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(text.slice(i))?.[0];
    if (scheme === undefined) break;
    i += scheme.length;
    const challenge = { scheme: scheme.toLowerCase(), params: {} as Record<string, string> };
    out.push(challenge);
    for (;;) {
      skip();
      const key = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*/.exec(text.slice(i));
      if (key === null) break; // the next scheme (or a token68, which registries do not use)
      i += key[0].length;
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < n && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < n) i++;
          value += text[i++];
        }
        i++;
      } else {
        const token = /^[^\s,]*/.exec(text.slice(i))![0];
        value = token;
        i += token.length;
      }
      challenge.params[key[1]!.toLowerCase()] = value;
    }
  }
  return out;
}

interface CachedToken {
  readonly token: string;
  readonly expires: number;
}

/** The `Authorization` for one registry host, learnt from its challenges. */
export class Authorizer {
  readonly #host: string;
  readonly #plainHttp: boolean;
  readonly #transport: Transport;
  readonly #source: CredentialSource;
  #credentials: Credentials | undefined | null = null; // null: not looked up yet
  #challenge: Challenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();

  constructor(host: string, plainHttp: boolean, transport: Transport, source: CredentialSource) {
    this.#host = host;
    this.#plainHttp = plainHttp;
    this.#transport = transport;
    this.#source = source;
  }

  async #creds(): Promise<Credentials | undefined> {
    if (this.#credentials === null) this.#credentials = await this.#source(this.#host);
    return this.#credentials;
  }

  /** The header for a request needing `scopes` (undefined: go anonymous, as nothing asked otherwise yet). */
  async authorization(scopes: readonly string[], signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === 'basic') {
      const c = await this.#creds();
      if (c?.username === undefined || c.password === undefined) throw new UnauthenticatedError(`${quote(this.#host)} asks for a username and password: strata login ${this.#host}`);
      return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    }
    if (challenge.scheme === 'bearer') return `Bearer ${await this.#token(challenge, scopes, signal)}`;
    throw new UnauthenticatedError(`${quote(this.#host)} asks for ${quote(challenge.scheme)} authentication, which strata does not speak`);
  }

  /**
   * Learns from a 401 to a request that carried `sent` (or no `Authorization`): its challenge replaces what
   * was known, and a refused token is not used again. The caller tries once more.
   */
  learn(response: HttpResponse, scopes: readonly string[], sent: string | undefined): void {
    const text = header(response, 'www-authenticate');
    const challenges = text === undefined ? [] : parseChallenges(text);
    const chosen = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
    if (chosen === undefined) throw new UnauthenticatedError(`${quote(this.#host)} refused the request and named no way to authenticate`);
    this.#challenge = chosen;
    if (chosen.scheme === 'bearer' && sent !== undefined) {
      const key = this.#cacheKey(chosen, scopes);
      if (sent === `Bearer ${this.#tokens.get(key)?.token}`) this.#tokens.delete(key);
    }
  }

  #cacheKey(challenge: Challenge, scopes: readonly string[]): string {
    return `${challenge.params.realm}\u0000${challenge.params.service ?? ''}\u0000${[...new Set(scopes)].sort().join(' ')}`;
  }

  async #token(challenge: Challenge, scopes: readonly string[], signal?: AbortSignal): Promise<string> {
    const key = this.#cacheKey(challenge, scopes);
    const cached = this.#tokens.get(key);
    if (cached !== undefined && cached.expires > Date.now()) return cached.token;
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError(`${quote(this.#host)} sent a bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`${quote(this.#host)} named a token realm that is not a URL`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.#plainHttp)) {
      throw new RegistryError(`${quote(this.#host)} named a token realm over ${quote(url.protocol)}: strata sends credentials only over https`);
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const scope of [...new Set(scopes)].sort()) url.searchParams.append('scope', scope);
    const c = await this.#creds();
    let response: HttpResponse;
    if (c?.identityToken !== undefined) {
      // An identity token is an OAuth2 refresh token: exchanged by POST (Docker's flow).
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: c.identityToken, client_id: 'strata', service: challenge.params.service ?? '' });
      for (const scope of [...new Set(scopes)].sort()) form.append('scope', scope);
      response = await this.#transport.send({ method: 'POST', url: new URL(realm), headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), ...(signal ? { signal } : {}) });
    } else {
      const headers: Record<string, string> = c?.username !== undefined && c.password !== undefined ? { authorization: `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` } : {};
      response = await this.#transport.send({ method: 'GET', url, headers, ...(signal ? { signal } : {}) });
    }
    if (response.status === 401) {
      await response.dump();
      throw new UnauthenticatedError(c === undefined ? `${quote(this.#host)} needs credentials: strata login ${this.#host}` : `${quote(this.#host)}'s token service refused the credentials`);
    }
    if (response.status === 403) {
      await response.dump();
      throw new PermissionDeniedError(`${quote(this.#host)}'s token service refused scope ${quote(scopes.join(' '))}`);
    }
    if (response.status !== 200) {
      await response.dump();
      throw new RegistryError(`${quote(this.#host)}'s token service answered HTTP ${response.status}`);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse((await Transport.read(response, 256 * 1024, 'a token response')).toString('utf8')) ?? {}; // null: no token
    } catch (error) {
      if ((error as { code?: string }).code === 'LIMIT_EXCEEDED') throw error;
      throw new RegistryError(`${quote(this.#host)}'s token service sent something that is not JSON`);
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (token === undefined || /[\r\n]/.test(token)) throw new RegistryError(`${quote(this.#host)}'s token service sent no usable token`);
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    // Renewed a little early: a token that expires in flight fails the request it was sent with.
    this.#tokens.set(key, { token, expires: Date.now() + Math.max(seconds - 10, seconds / 2) * 1000 });
    return token;
  }
}
