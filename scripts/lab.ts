// `npm run lab -- [--guests N] [--no-agent]`: boots N user-mode-linux guests (default 3), each a
// separate Linux kernel with its own clock, installs this checkout's packed tarball in every one
// as a user would, enables the systemd service, prints how to reach them, and keeps them until
// Ctrl-C (everything is torn down then). Needs root; see README "The VM lab".
import { parseArgs } from 'node:util';
import { VmLab, vmLabAvailable } from '../lab/vm/lab.ts';
import { agentStatus, enableService, installOnGuest, packAndInstall } from '../lab/vm/product.ts';

const { values } = parseArgs({
  options: {
    guests: { type: 'string', default: '3' },
    'no-agent': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('usage: npm run lab -- [--guests N] [--no-agent]\n');
  process.exit(0);
}
const guests = Number(values.guests);
if (!/^[0-9]+$/.test(values.guests ?? '') || guests < 1 || guests > 16) {
  process.stderr.write(`lab: --guests: a whole number from 1 to 16 (got ${JSON.stringify(values.guests)})\n`);
  process.exit(2);
}
const available = vmLabAvailable();
if (!available.ok) {
  process.stderr.write(`lab: ${available.reason}\n`);
  process.exit(2);
}

const log = (line: string): void => {
  process.stderr.write(`lab: ${line}\n`);
};
const startedMs = Date.now();
const lab = await VmLab.create({ guests, log });
log(`${guests} guest${guests === 1 ? "" : "s"} up in ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
if (!values['no-agent']) {
  log('packing and installing the product (npm pack; npm install -g into the share)');
  const tarball = await packAndInstall(lab);
  await Promise.all(lab.guests.map(async (guest) => {
    await installOnGuest(guest);
    await enableService(guest);
  }));
  log(`${tarball} installed; berkeley-agent.service enabled and started in every guest`);
  await new Promise((resolve) => setTimeout(resolve, 8000));
  for (const guest of lab.guests) {
    const status = await agentStatus(guest);
    log(`${guest.name}: ${status === null ? 'no answer yet' : `${String(status.role)}, master ${String(status.masterId)}, clock ${String((status.clock as { mode?: string } | undefined)?.mode)}`}`);
  }
}
process.stdout.write(`\nThe lab (namespace ${lab.namespace}):\n`);
for (const guest of lab.guests) process.stdout.write(`  ${guest.name}  ${guest.address}  ${lab.sshCommand(guest)}\n`);
process.stdout.write(`\nIn a guest: berkeley-agent status; journalctl -u berkeley-agent; adjtimex -p;\n`
  + `  measure its clock against the host: chronyd -Q -t 20 'server 198.18.100.1 iburst'\n`
  + `Consoles: ${lab.dir}/gN.console. Ctrl-C stops every guest and removes the lab.\n`);
// Ctrl-C (or SIGTERM) tears the lab down and exits: the lab's own signal handlers do it.
await new Promise<void>(() => {});
