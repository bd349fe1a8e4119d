// MQTT over WebSocket's transport on the `mqtt.wsPort` listener: the `ws` library loads at the
// first upgrade request, not at start (issue 14's footprint, docs/performance.md#footprint).
//
// Why: a gateway whose devices all speak MQTT over TCP never needs `ws`, yet the door is on by
// default; holding its code from start costs idle memory every such node pays. The listener is
// bound at start all the same (the ready line names it, a port clash fails start-up), and plain
// HTTP requests on it are answered 426 without `ws`.
//
// How: the HTTP server's `upgrade` event hands over the socket; until `ws` is loaded, upgrade
// requests wait for the one import (a few ms) and are then handled in arrival order by a
// `noServer` WebSocketServer with the same options the eager one had (path, maxPayload,
// subprotocols, Origin check): ws checks the path and the handshake itself, as it did when it
// listened on the server. A failed import refuses the waiting upgrades (their sockets closed,
// the reason logged) and the next upgrade tries again.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { WebSocketServer, createWebSocketStream as CreateStream } from 'ws';

export interface WsTransportOptions {
  path: string;
  maxPayload: number;
  /** ws' verifyClient: the Origin check (answer false with a status to refuse the handshake). */
  verifyClient(req: IncomingMessage, answer: (ok: boolean, status?: number, message?: string) => void): void;
  /** A WebSocket connection, as a byte stream for aedes. */
  accept(stream: Duplex, req: IncomingMessage): void;
  /** Once, when `ws` has loaded (ms from the first upgrade request). */
  loaded(ms: number): void;
  /** When loading `ws` failed (the waiting upgrades were refused). */
  failed(err: Error): void;
}

/** What the ready line says about the listener before its first upgrade. */
export const WS_TRANSPORT_ENGINE = 'ws, loaded at the first upgrade';

const ignoreError = (): void => undefined;

export class LazyWsTransport {
  private wss: WebSocketServer | undefined;
  private createStream: typeof CreateStream | undefined;
  private loading: Promise<void> | undefined;
  private closed = false;

  constructor(
    server: HttpServer,
    private readonly o: WsTransportOptions,
  ) {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** Whether `ws` has loaded (tests, diagnostics). */
  get isLoaded(): boolean {
    return this.wss !== undefined;
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.wss) {
      this.handle(req, socket, head);
      return;
    }
    // A reset while the import runs must not become an uncaught 'error'; ws adds its own handler.
    socket.on('error', ignoreError);
    this.loading ??= this.load();
    void this.loading.then(
      () => {
        socket.off('error', ignoreError);
        if (this.closed || !this.wss) socket.destroy();
        else this.handle(req, socket, head);
      },
      () => socket.destroy(),
    );
  }

  private async load(): Promise<void> {
    const started = performance.now();
    try {
      const { WebSocketServer, createWebSocketStream } = await import('ws');
      this.createStream = createWebSocketStream;
      this.wss = new WebSocketServer({
        noServer: true,
        path: this.o.path,
        maxPayload: this.o.maxPayload,
        handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
        verifyClient: (info: { req: IncomingMessage }, answer: (ok: boolean, status?: number, message?: string) => void) => this.o.verifyClient(info.req, answer),
      });
      this.o.loaded(performance.now() - started);
    } catch (err) {
      this.loading = undefined; // the next upgrade tries again
      this.o.failed(err as Error);
      throw err;
    }
  }

  private handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss!.handleUpgrade(req, socket, head, (ws) => {
      const stream = this.createStream!(ws);
      stream.on('error', ignoreError);
      this.o.accept(stream, req);
    });
  }

  /** No further upgrades; connections already open are the gateway's to close. */
  close(): void {
    this.closed = true;
    this.wss?.close();
  }
}
