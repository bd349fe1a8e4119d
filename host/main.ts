// Entry point of `npm start` (`node dist/host/main.js start`): same dispatcher as the CLI.
import { runCli } from './cli.js';

runCli(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`tributary: ${(err as Error).message}\n`);
  process.exit(1);
});
