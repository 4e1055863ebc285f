/**
 * One benchmark process (started by run.ts):
 *   node worker.js server <contender> <address-json>   listens; prints {"ready": address}; on "exit" from stdin
 *                                                      prints {"rss": peak KB} and exits
 *   node worker.js client <contender> <scenario> <address-json>
 *                                                      runs the scenario; prints {"result": …, "rss": peak KB}
 */
import { contenders } from './contenders';
import { scenarios, serverHandlers } from './scenarios';
import type { Address } from './types';

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const peakRssKb = () => process.resourceUsage().maxRSS;

async function main(): Promise<void> {
  const [role, contenderName, ...rest] = process.argv.slice(2);
  const contender = contenders.find((c) => c.name === contenderName);
  if (!contender) throw new Error(`unknown contender ${contenderName}`);

  if (role === 'server') {
    const address = JSON.parse(rest[0]) as Address;
    const bound = await contender.server().listen(address, serverHandlers(contender));
    print({ ready: bound });
    process.stdin.on('data', () => {
      print({ rss: peakRssKb() });
      process.exit(0);
    });
    return;
  }

  const scenario = scenarios.find((s) => s.name === rest[0]);
  if (!scenario) throw new Error(`unknown scenario ${rest[0]}`);
  const client = await contender.client(JSON.parse(rest[1]) as Address);
  const result = await scenario.run(client, contender);
  print({ result, rss: peakRssKb() });
  await Promise.race([client.close(), new Promise((resolve) => setTimeout(resolve, 500))]);
  process.exit(0);
}

main().catch((error: Error) => {
  print({ error: error.stack ?? String(error) });
  process.exit(1);
});
