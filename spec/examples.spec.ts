import { killChildren, spawnNode } from './helpers/child';
import { freePort } from './helpers/net';

afterEach(killChildren);

const ts = (file: string) => ['-r', 'ts-node/register/transpile-only', `examples/${file}`];

describe('examples', () => {
  it('concurrent.ts prints its timing with no wrong reply', async () => {
    const run = spawnNode(ts('concurrent.ts'), { COUNT: '2000' });
    const { code } = await run.exited;
    expect(run.output()).toMatch(/2000 concurrent requests: [\d.]+ ms \(\d+ req\/s\), 0 wrong replies/);
    expect(code).toBe(0);
  });

  it('pipeline.ts gets a result from every worker and batches progress', async () => {
    const run = spawnNode(ts('pipeline.ts'));
    const { code } = await run.exited;
    expect(run.output()).toContain('result w1: 500500');
    expect(run.output()).toContain('result w3: 500500');
    expect(run.output()).toMatch(/progress: .*w\d=1000/);
    expect(code).toBe(0);
  });

  it('marble.ts runs its own marble test over an in-memory link', async () => {
    const run = spawnNode(ts('marble.ts'));
    const { code } = await run.exited;
    expect(run.output()).toContain('marble test passed');
    expect(code).toBe(0);
  });

  it('pull.ts pulls every row with the producer at most a window ahead', async () => {
    const run = spawnNode(ts('pull.ts'));
    const { code } = await run.exited;
    const match = /pulled 100 rows; the producer ran at most (\d+) rows ahead/.exec(run.output());
    expect(match).not.toBeNull();
    expect(Number(match![1])).toBeLessThanOrEqual(16);
    expect(code).toBe(0);
  });

  it('cli.ts asks the hello.ts daemon, prints the answer and exits 0; with the daemon down it exits 1 at once', async () => {
    const port = String(await freePort());
    const hello = spawnNode(ts('hello.ts'), { PORT: port });
    await hello.waitFor('Listening');
    const clis = [spawnNode([...ts('cli.ts'), 'status'], { PORT: port }), spawnNode([...ts('cli.ts'), 'again'], { PORT: port })];
    const exits = await Promise.all(clis.map((cli) => cli.exited));
    expect(exits.map((exit) => exit.code)).toEqual([0, 0]);
    expect(clis[0].output()).toContain('hello received "status"');
    expect(clis[1].output()).toContain('hello received "again"');
    await hello.waitFor('Hello a CLI');
    const down = spawnNode(ts('cli.ts'), { PORT: String(await freePort()) });
    expect((await down.exited).code).toBe(1);
    expect(down.output()).toMatch(/cli: Could not connect to "hello"/);
  });

  it('interactive.ts sends typed lines to hello.ts and prints the replies', async () => {
    const port = String(await freePort());
    const hello = spawnNode(ts('hello.ts'), { PORT: port });
    await hello.waitFor('Listening');
    const interactive = spawnNode(ts('interactive.ts'), { PORT: port });
    await interactive.waitFor('Type a line');
    interactive.process.stdin?.end('ping\n');
    await interactive.waitFor('> hello received "ping"');
    await hello.waitFor('Hello interactive!');
  });
});
