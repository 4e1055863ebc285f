// Review as an RxJS power user (and a careless one): Observable contracts of request$/messages$/stream(), and
// callbacks that re-enter the node. Every probe here once failed. Over the in-memory link and a real TCP connection.
import { from, lastValueFrom, toArray } from 'rxjs';
import { ErrorCode, type NodeMessage } from '../../src';
import { closeAll, link, node, type Transport } from '../helpers/net';

afterEach(closeAll);

async function pair(kind: Transport, handle?: (m: NodeMessage) => void) {
  const server = node('hub', { heartbeatInterval: 0 });
  const client = node('client', { heartbeatInterval: 0 });
  if (handle) server.on('message', handle);
  await link(server, client, kind);
  return { server, client };
}

describe.each<Transport>(['link', 'tcp'])('message.stream() of one value that happens to be iterable (%s)', (kind) => {
  // A string is an iterable of its characters, a Buffer or typed array one of its bytes: streamed as such, the
  // requester got 'h', 'e'… (sendTo: 'h') or 104, 105… (sendTo: 104) — a silently changed value, one frame per byte.
  const values: Array<[string, unknown]> = [
    ['a string', 'hello'],
    ['a Buffer', Buffer.from('hi')],
    ['a Uint8Array', new Uint8Array([1, 2])],
    ['a Float64Array', new Float64Array([1.5])],
  ];
  it.each(values)('%s is refused with a TypeError (the requester gets it), not split into characters or bytes', async (_, value) => {
    const thrown: unknown[] = [];
    const { client } = await pair(kind, (m) => {
      try {
        m.stream(value as Iterable<unknown>);
      } catch (error) {
        thrown.push(error);
      }
    });
    const expected = { code: ErrorCode.REMOTE, remoteName: 'TypeError', message: expect.stringContaining('reply(value)') };
    await expect(lastValueFrom(client.request$('hub', 'x').pipe(toArray()))).rejects.toMatchObject(expected);
    await expect(client.sendTo('hub', 'x')).rejects.toMatchObject(expected);
    expect(thrown).toEqual([expect.any(TypeError), expect.any(TypeError)]);
  });

  it('an explicit stream of them still works: from(string) (an Observable), an array of Buffers', async () => {
    const { client } = await pair(kind, (m) => m.stream(m.data === 'chars' ? from('hi') : [Buffer.from('a'), Buffer.from('b')]));
    await expect(lastValueFrom(client.request$('hub', 'chars').pipe(toArray()))).resolves.toEqual(['h', 'i']);
    await expect(lastValueFrom(client.request$('hub', 'buffers').pipe(toArray()))).resolves.toEqual([Buffer.from('a'), Buffer.from('b')]);
  });
});
