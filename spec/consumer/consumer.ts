// A consumer of the *built* package: 'ipc-link-core' resolves to this package itself (package.json "exports"),
// so this file is compiled against dist/index.d.ts by spec/surface.spec.ts, with the declaration files checked
// (skipLibCheck off). It fails when the published typings are broken — say, a public declaration that refers
// to one removed by `stripInternal`. Never run; it only has to type-check.
import { Duplex } from 'node:stream';
import { filter, map, of, take, type Observable } from 'rxjs';
import {
  ClosedError,
  CodecError,
  ConnectError,
  createLinkPair,
  decodeFrames,
  DEFAULT_MAX_FRAME_SIZE,
  defaultCodec,
  encodeFrame,
  encodeHeader,
  Encoding,
  ErrorCode,
  FrameDecoder,
  FrameFlags,
  FrameReader,
  FrameType,
  fromSocket,
  HandshakeError,
  HEADER_SIZE,
  IpcError,
  IpcTimeoutError,
  MAX_NAME_LENGTH,
  Node,
  NotConnectedError,
  PeerDisconnectedError,
  ProtocolError,
  PROTOCOL_VERSION,
  RemoteError,
  Serializer,
  TlsError,
  type BroadcastOutcome,
  type Codec,
  type ConnectionStats,
  type Frame,
  type LinkSocket,
  type NodeMessage,
  type NodeOptions,
  type NodeSocket,
  type NodeStats,
} from 'ipc-link-core';

export async function consume(): Promise<void> {
  const options: NodeOptions = { requestTimeout: 1000, maxFrameSize: DEFAULT_MAX_FRAME_SIZE, codec: new Serializer() };
  const server = new Node('server', options)
    .on('connection', (name: string, socket: NodeSocket) => void socket.send(`hi ${name}`, { receptive: false }))
    .on('message', (message: NodeMessage) => {
      if (message.data === 'feed') message.stream(of(1, 2, 3));
      else message.reply({ from: message.from, id: message.id }) || message.error(new Error('late'));
    })
    .on('error', (error: Error) => console.error(error.message));
  const client = new Node('client', { codec: defaultCodec });
  const [a, b]: [LinkSocket, LinkSocket] = createLinkPair();
  server.acceptVia(a);
  const socket: NodeSocket = await client.connectVia('server', b);
  await client.connectVia('other', new Duplex());
  const reply: unknown = await client.sendTo(socket, 'x', { timeout: 100 });
  const values$: Observable<number> = client.request$<number>('server', 'feed', { window: 8 }).pipe(take(2), map((n) => n * 2));
  client.messages$.pipe(filter((m) => m.receptive)).subscribe((m) => m.reply(m.data));
  const outcomes: BroadcastOutcome[] = await server.broadcastSettled('ping', { filter: /^c/ });
  const stats: NodeStats = client.stats();
  const peer: ConnectionStats | undefined = socket.stats();
  const rtt: number = await client.pingTo('server');
  void [reply, values$, outcomes, stats.bytesIn, peer, rtt, MAX_NAME_LENGTH, socket.role, socket.connected];
  await client.disconnectFrom('server');
  await Promise.all([client.close(), server.close({ reconnect: false, drain: 10 })]);

  const codec: Codec = {
    encode: (value) => ({ encoding: Encoding.JSON, payload: Buffer.from(JSON.stringify(value)) }),
    decode: (payload) => JSON.parse(payload.toString('utf8')) as unknown,
  };
  void codec;

  const [header, payload] = encodeFrame({ type: FrameType.MESSAGE, flags: FrameFlags.NONE, id: 0, encoding: Encoding.BUFFER, payload: Buffer.from('hi') });
  const headerOnly: Buffer = encodeHeader(FrameType.MESSAGE, FrameFlags.NONE, 0, Encoding.BUFFER, payload.length);
  const decoder = new FrameDecoder((frame: Frame) => void frame.payload, { maxFrameSize: 1 << 20 });
  decoder.push(Buffer.concat([header, payload]));
  fromSocket(b).pipe(decodeFrames({ maxFrameSize: 1 << 20 })).subscribe((frame: Frame) => void frame.type);
  const reader = new FrameReader();
  void [reader.onread, headerOnly, HEADER_SIZE, PROTOCOL_VERSION];

  const errors: IpcError[] = [
    new IpcTimeoutError('t'),
    new NotConnectedError('n'),
    new PeerDisconnectedError('p'),
    new ProtocolError(ErrorCode.PROTOCOL, 'x'),
    new HandshakeError(ErrorCode.HANDSHAKE, 'h'),
  ];
  const classes = [ConnectError, TlsError, ClosedError, CodecError, RemoteError];
  void [errors.map((error) => error.code), classes];
}
