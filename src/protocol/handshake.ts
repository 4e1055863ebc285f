import { ErrorCode, HandshakeError, IpcError, ProtocolError, TlsError } from '../errors';
import { DEFAULT_MAX_FRAME_SIZE, FrameType, PROTOCOL_VERSION } from './constants';
import { closeFrame, handshakeFrame, PROTOCOL_NAME, readAck, readClose, readHello, type AckBody, type HelloBody } from './control';
import type { Frame } from './Frame';
import type { OutgoingFrame } from './FrameEncoder';


/** Options of a {@link Handshake}. */
export interface HandshakeOptions {
  /** Client: the name the server must announce. */
  expectedPeer?: string;
  /** Server: accepts or refuses a client's name. */
  accept?: AcceptPeer;
  /** Shared secret: makes the handshake a mutual HMAC challenge–response. Both sides must have it. */
  secret?: Buffer;
  /** Source of nonces (tests). Default: 32 random bytes from `node:crypto`. */
  nonce?: () => Buffer;
  /** This side's `maxFrameSize`, announced in its hello. Default: {@link DEFAULT_MAX_FRAME_SIZE}. */
  maxFrameSize?: number;
  /** This side's instance id, announced in its hello (see `HelloBody.instance`). */
  instance?: string;
  /** Client: the resume token the server gave our previous connection to it (see `AckBody.resume`). */
  resume?: string;
}

/** `node:crypto`, loaded on first use: only a handshake with a secret needs it (~5 ms to load). */
let cryptoModule: typeof import('node:crypto') | undefined;
const crypto = (): typeof import('node:crypto') => (cryptoModule ??= require('node:crypto') as typeof import('node:crypto'));

/** HMAC-SHA256 over both nonces and both names, bound to the role, so no proof can be replayed or reflected. */
export function authProof(secret: Buffer, role: 'client' | 'server', clientNonce: string, serverNonce: string, clientName: string, serverName: string): string {
  return crypto().createHmac('sha256', secret).update(`${PROTOCOL_NAME}/${role}\n${clientNonce}\n${serverNonce}\n${clientName}\n${serverName}`).digest('base64');
}

/**
 * A nonce as PROTOCOL.md has it: base64 text (ours are 44 characters; any length up to 1 KiB is taken). Never a line
 * feed, so the text the proofs sign has one reading (see NAME_CONTROL_CHARACTERS for the names). The base64url
 * alphabet (`-`, `_`) is taken too: only a line feed could harm, and until these checks any string was (other
 * implementations' nonces, e.g. Python's `secrets.token_urlsafe`, are base64url).
 */
function isNonce(value: unknown): boolean {
  return typeof value === 'string' && value.length <= 1024 && /^[A-Za-z0-9+/_-]+={0,2}$/.test(value);
}

/** Whether `received` holds the bytes of the base64 `expected` (a proof, a resume token), compared in constant time. */
export function sameProof(expected: string, received: unknown): boolean {
  if (typeof received !== 'string') return false;
  const a = Buffer.from(expected, 'base64');
  const b = Buffer.from(received, 'base64');
  return a.length === b.length && crypto().timingSafeEqual(a, b);
}

function authError(message: string): HandshakeError {
  return new HandshakeError(ErrorCode.AUTH, message);
}

/** Handshake steps, carried in the frame's id field. */
export const HandshakeStep = { CLIENT_HELLO: 1, SERVER_HELLO: 2, CLIENT_ACK: 3, SERVER_ACCEPT: 4 } as const;

/** The outcome of feeding one frame to a {@link Handshake}. */
export interface HandshakeResult {
  /** Frame to send to the peer, if any. */
  send?: OutgoingFrame;
  /** Set when the handshake completed: the peer's announced name. */
  done?: string;
  /** Set when the handshake failed; `send` then holds the CLOSE frame to send, if any. */
  error?: IpcError;
}

/** Decides whether a server accepts a peer (its name and instance id); returns the refusal, or undefined to accept. */
export type AcceptPeer = (name: string, instance: string | undefined, resume: string | undefined) => HandshakeError | undefined;

/**
 * The connection handshake as a pure state machine (no sockets or timers): feed it the peer's HANDSHAKE and
 * CLOSE frames, send what it returns.
 *
 * ```
 * client                                                      server
 * 1 HANDSHAKE id=1 {protocol,version,name,maxFrameSize[,instance,resume,nonce]}  ──►
 *                                            checks protocol, version, name (accept; with a secret, a nonce,
 *                                            and the name only in step 3)
 * 2 ◄──  HANDSHAKE id=2 {protocol,version,name,maxFrameSize[,nonce]}   or CLOSE {code,message,reconnect}
 *   checks the server's name is the expected one; with a secret, that it sent a nonce
 * 3 HANDSHAKE id=3 {[proof]}  ──►  (or CLOSE)
 *                                            with a secret, checks the proof; checks the name is still free
 * 4 ◄──  HANDSHAKE id=4 {[resume,proof]}   (or CLOSE)
 * with a secret, checks the server's proof (else CLOSE)
 * ready after receiving 4                                     ready after sending 4
 * ```
 * `nonce`: 32 fresh random bytes (base64) of each side; `proof`: {@link authProof} (HMAC-SHA256 over both nonces
 * and both names, bound to the role). The client proves first: a server hands its proof only to a client that
 * has proven it knows the secret, so whoever can reach a port gets nothing to test guesses of the secret against
 * offline (only a fake server a client connects to sees a client's proof). Bodies are laid out and read in
 * `control.ts`.
 */
export class Handshake {
  private step = 0;
  private peer: string | null = null;
  /** A server's: the client's hello arrived and was taken (the handshake is under way, the peer speaks the protocol). */
  get helloTaken(): boolean {
    return this.step !== 0;
  }
  /** The peer's announced `maxFrameSize`, once its hello arrived. */
  peerMaxFrameSize = 0;
  /** The peer's announced instance id, once its hello arrived (if it gave one). */
  peerInstance: string | undefined;
  /** Server: the resume token the client showed in its hello (if any). */
  peerResume: string | undefined;
  /**
   * The resume token of this connection, once the handshake is done: the server's fresh one (sent in step 4), or
   * the one the client received (undefined from a server that sends none).
   */
  resumeToken: string | undefined;
  private clientNonce = '';
  private serverNonce = '';

  constructor(
    readonly role: 'client' | 'server',
    private readonly ownName: string,
    private readonly options: HandshakeOptions = {},
  ) {}

  /** Frames to send as soon as the connection opens. */
  start(): OutgoingFrame | undefined {
    if (this.role === 'server') return undefined;
    this.step = HandshakeStep.CLIENT_HELLO;
    if (this.options.secret) this.clientNonce = this.freshNonce();
    const resume = this.options.resume;
    return this.hello(HandshakeStep.CLIENT_HELLO, { ...(resume ? { resume } : {}), ...(this.options.secret ? { nonce: this.clientNonce } : {}) });
  }

  private freshNonce(): string {
    return (this.options.nonce?.() ?? crypto().randomBytes(32)).toString('base64');
  }

  /** Feeds one frame received before the handshake completed. */
  receive(frame: Frame): HandshakeResult {
    try {
      if (frame.type === FrameType.CLOSE) {
        const body = readClose(frame);
        // The server's TLS refused our certificate (see unverifiedClient): final, as a refusal by our own TLS.
        if (body.code === ErrorCode.TLS) return { error: new TlsError(`Refused by the peer: ${body.message}`) };
        const code = body.code === ErrorCode.NAME_IN_USE || body.code === ErrorCode.AUTH ? body.code : ErrorCode.HANDSHAKE;
        return { error: new HandshakeError(code, `Refused by the peer: ${body.message}`, { retryable: body.reconnect }) };
      }
      if (frame.type !== FrameType.HANDSHAKE) {
        throw new ProtocolError(ErrorCode.PROTOCOL, `Expected a handshake frame, received type 0x${frame.type.toString(16)}`);
      }
      return this.role === 'server' ? this.receiveAsServer(frame) : this.receiveAsClient(frame);
    } catch (error) {
      const ipcError = error instanceof IpcError ? error : new HandshakeError(ErrorCode.HANDSHAKE, String(error));
      return { error: ipcError, send: refusal(ipcError) };
    }
  }

  private receiveAsServer(frame: Frame): HandshakeResult {
    const { secret } = this.options;
    if (this.step === 0 && frame.id === HandshakeStep.CLIENT_HELLO) {
      const body = this.readHello(frame);
      const { name } = body;
      if (secret && body.nonce === undefined) throw authError(`"${name}" did not authenticate: this node requires a secret`);
      if (secret && !isNonce(body.nonce)) throw authError(`"${name}" sent a nonce that is not base64 text`);
      this.peerResume = body.resume;
      // With a secret, which names are connected is told only to a client that proved itself (step 3 checks).
      const refused = secret ? undefined : this.options.accept?.(name, body.instance, body.resume);
      if (refused) return { error: refused, send: refusal(refused) };
      this.peer = name;
      this.step = HandshakeStep.SERVER_HELLO;
      if (!secret) return { send: this.hello(HandshakeStep.SERVER_HELLO, {}) };
      this.clientNonce = body.nonce!;
      this.serverNonce = this.freshNonce();
      // No proof yet: it goes in step 4, to a client that proved itself first.
      return { send: this.hello(HandshakeStep.SERVER_HELLO, { nonce: this.serverNonce }) };
    }
    if (this.step === HandshakeStep.SERVER_HELLO && frame.id === HandshakeStep.CLIENT_ACK && this.peer !== null) {
      const accept: AckBody = {};
      if (secret) {
        const expected = authProof(secret, 'client', this.clientNonce, this.serverNonce, this.peer, this.ownName);
        if (!sameProof(expected, readAck(frame).proof)) throw authError(`"${this.peer}" failed authentication (wrong secret or replayed handshake)`);
        accept.proof = authProof(secret, 'server', this.clientNonce, this.serverNonce, this.peer, this.ownName);
      }
      const refused = this.options.accept?.(this.peer, this.peerInstance, this.peerResume);
      if (refused) return { error: refused, send: refusal(refused) };
      this.step = HandshakeStep.SERVER_ACCEPT;
      // Only a client with an instance id can come back to take this connection over.
      this.resumeToken = this.peerInstance === undefined ? undefined : this.freshNonce();
      if (this.resumeToken !== undefined) accept.resume = this.resumeToken;
      return { send: handshakeFrame(HandshakeStep.SERVER_ACCEPT, accept), done: this.peer };
    }
    throw unexpectedStep(frame);
  }

  private receiveAsClient(frame: Frame): HandshakeResult {
    if (this.step === HandshakeStep.CLIENT_ACK && frame.id === HandshakeStep.SERVER_ACCEPT) {
      const accept = readAck(frame);
      const { secret } = this.options;
      if (secret) {
        const expected = authProof(secret, 'server', this.clientNonce, this.serverNonce, this.ownName, this.peer!);
        if (!sameProof(expected, accept.proof)) throw authError(`"${this.peer}" failed authentication (wrong secret)`);
      }
      this.resumeToken = accept.resume;
      this.step = HandshakeStep.SERVER_ACCEPT;
      return { done: this.peer! };
    }
    if (this.step !== HandshakeStep.CLIENT_HELLO || frame.id !== HandshakeStep.SERVER_HELLO) throw unexpectedStep(frame);
    const body = this.readHello(frame);
    const { name } = body;
    const expected = this.options.expectedPeer;
    if (expected !== undefined && name !== expected) {
      throw new HandshakeError(
        ErrorCode.HANDSHAKE,
        `Connected to a node named "${name}", but "${expected}" was expected: pass the peer's own name to connectTo`,
      );
    }
    const { secret } = this.options;
    let ack: AckBody = {};
    if (secret) {
      if (body.nonce === undefined) throw authError(`"${name}" does not authenticate, but this node requires it`);
      if (!isNonce(body.nonce)) throw authError(`"${name}" sent a nonce that is not base64 text`);
      this.serverNonce = body.nonce;
      // The client proves first; the server's proof comes in step 4.
      ack = { proof: authProof(secret, 'client', this.clientNonce, this.serverNonce, this.ownName, name) };
    }
    this.peer = name;
    this.step = HandshakeStep.CLIENT_ACK;
    return { send: handshakeFrame(HandshakeStep.CLIENT_ACK, ack) };
  }

  private hello(step: number, extra: Pick<HelloBody, 'nonce' | 'resume'>): OutgoingFrame {
    const maxFrameSize = this.options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    const { instance } = this.options;
    return handshakeFrame(step, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: this.ownName, maxFrameSize, ...(instance ? { instance } : {}), ...extra });
  }

  /** Reads the peer's hello (`readHello`) and keeps its `maxFrameSize`. */
  private readHello(frame: Frame): HelloBody {
    const body = readHello(frame);
    this.peerMaxFrameSize = body.maxFrameSize;
    this.peerInstance = body.instance;
    return body;
  }
}

function unexpectedStep(frame: Frame): ProtocolError {
  return new ProtocolError(ErrorCode.PROTOCOL, `Unexpected handshake step ${frame.id}`);
}

function refusal(error: IpcError): OutgoingFrame {
  const reconnect = error instanceof HandshakeError && error.retryable;
  return closeFrame({ code: error.code, message: error.message, reconnect });
}
