// Type declarations of the Tether client's React hooks, the package's
// `tether-client/react` entry point.

import type { ReactElement, ReactNode } from 'react';

import type { CloseInfo, OtherOptions, TetherClient } from './tether.js';

/** Where the token sent in `auth` comes from: a fixed `token` (a new one reconnects), or `getToken`. */
export type ProviderTokens =
  | { token: string; getToken?: undefined }
  | {
      token?: undefined;
      /** Called before every connection and for every refresh; a new function is used from its next call on. */
      getToken: () => Promise<string> | string;
    };

/** The props of a {@link TetherProvider}. */
export type TetherProviderProps = ProviderTokens & {
  /** The server's WebSocket endpoint (`ws:` or `wss:`); a new one is a new connection. */
  url: string;
  /** The client's other settings, read when the connection opens. */
  options?: OtherOptions;
  children?: ReactNode;
};

/** Holds one connection for the components below it; closes it when unmounted. */
export function TetherProvider(props: TetherProviderProps): ReactElement;

/** The provider's connection as its `state` events describe it. */
export interface ConnectionStatus {
  state: 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';
  /** The user of the last `auth_ack`; empty before. */
  user: string;
  /** The server's id of the connection; empty before. */
  session: string;
  /** Retries in a row so far. */
  attempt: number;
  /** When the next dial happens (a `Date.now()` value), while reconnecting. */
  retryAt: number | null;
  /** Why the last connection ended, while reconnecting or closed (a final close code stays closed). */
  reason: CloseInfo | null;
  /** When the token expires (a `Date.now()` value), if it does. */
  expiresAt: number | null;
  /** The last failed refresh, until one succeeds. */
  refreshError: { code?: string; message: string } | null;
}

/** What {@link useTether} gives. */
export interface TetherState extends ConnectionStatus {
  /** The provider's client; null until the provider's effect made it. */
  client: TetherClient | null;
  /** Whole seconds left before the next dial, while reconnecting; null otherwise. */
  retryIn: number | null;
}

/** The provider's connection, its status and the reconnect countdown. */
export function useTether(): TetherState;

/** A publication on a channel, as {@link useChannel} keeps it. */
export interface ChannelMessage {
  payload: unknown;
  /** The publishing user; absent for the HTTP publish API. */
  sender?: string;
  offset: number;
  /** The epoch the offset counts in; null before the first `subscribed`. */
  epoch: string | null;
  /** Replayed from the history after a reconnect. */
  recovered: boolean;
}

/** Something that happened to a channel's subscription. */
export type ChannelNotice =
  | {
      /** After a reconnect the server replayed the `count` messages missed. */
      kind: 'recovered';
      epoch: string;
      offset: number;
      count: number;
    }
  | {
      /** After a reconnect the history did not cover the gap: publications were lost; resync. */
      kind: 'lost';
      epoch: string;
      offset: number;
    }
  | { /** The server ended the subscription. */ kind: 'ended'; reason: string }
  | { /** The server refused the subscription. */ kind: 'refused'; code: string; message: string };

/** What {@link useChannel} gives. */
export interface ChannelView {
  /** The last `limit` messages, oldest first. */
  messages: ChannelMessage[];
  /** The last `limit` notices, oldest first. */
  notices: ChannelNotice[];
  /** The channel's position at the last `subscribed`; null before it or once ended. */
  subscribed: { epoch: string; offset: number } | null;
  /** Publishes `payload` on the channel. */
  publish(payload: unknown, options?: { timeout?: number }): Promise<{ type: 'ack'; id: string; offset: number }>;
}

/** Subscribes to `channel` while mounted; keeps its last `limit` (1000) messages and notices. */
export function useChannel(channel: string, options?: { limit?: number }): ChannelView;

/** Subscribes to `channel` while mounted; its users, sorted. */
export function usePresence(channel: string): string[];
