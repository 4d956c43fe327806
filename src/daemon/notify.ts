// systemd's notification protocol (sd_notify): with Type=notify, systemd passes a Unix datagram
// socket in $NOTIFY_SOCKET and waits for "READY=1" before it considers the service started.
// Node has no Unix datagram sockets, so the message goes out through libc socket/sendto, bound
// with koffi (loaded only when $NOTIFY_SOCKET is set). Never throws: a failure is reported to the
// caller, who logs it; the agent runs on either way.
import { loadLibc } from '../native/libc.ts';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
/** sizeof(struct sockaddr_un): a 2-byte family and a 108-byte path. */
const SOCKADDR_UN_BYTES = 110;
const SUN_PATH_BYTES = 108;

interface Binding {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, message: Buffer, length: number, flags: number, address: Buffer, addressLength: number): number;
  close(fd: number): number;
  errno(): number;
}

let cachedBinding: Binding | { error: string } | null = null;

function bind(): Binding | { error: string } {
  const loaded = loadLibc();
  if ('error' in loaded) return { error: `sd_notify: ${loaded.error}` };
  try {
    const { koffi, libc } = loaded;
    const socket = libc.func('int socket(int domain, int type, int protocol)');
    const sendto = libc.func('long sendto(int fd, const void *message, size_t length, int flags, const void *address, uint32_t addressLength)');
    const close = libc.func('int close(int fd)');
    return {
      socket: (domain, type, protocol) => socket(domain, type, protocol) as number,
      sendto: (fd, message, length, flags, address, addressLength) => Number(sendto(fd, message, length, flags, address, addressLength)),
      close: (fd) => close(fd) as number,
      errno: () => koffi.errno(),
    };
  } catch (error) {
    return { error: `cannot bind socket/sendto through koffi: ${(error as Error).message.split('\n')[0]}` };
  }
}

/** struct sockaddr_un for a path, or for an abstract name given as "@name". */
export function sockaddrUn(socketPath: string): { address: Buffer; length: number } | { error: string } {
  const abstract = socketPath.startsWith('@');
  const name = Buffer.from(abstract ? socketPath.slice(1) : socketPath, 'utf8');
  // A path needs its terminating NUL; an abstract name starts with a NUL instead.
  if (name.length + 1 > SUN_PATH_BYTES) return { error: `NOTIFY_SOCKET is too long (${name.length} bytes)` };
  const address = Buffer.alloc(SOCKADDR_UN_BYTES);
  address.writeUInt16LE(AF_UNIX, 0);
  name.copy(address, abstract ? 3 : 2);
  // Abstract names are exactly as long as given; paths may count the whole structure.
  return { address, length: abstract ? 2 + 1 + name.length : SOCKADDR_UN_BYTES };
}

/**
 * Sends `state` ("READY=1", "STOPPING=1", "STATUS=...") to $NOTIFY_SOCKET. Returns null when sent
 * or when there is no such socket (not started by systemd with Type=notify), else why not.
 */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const socketPath = env.NOTIFY_SOCKET;
  if (socketPath === undefined || socketPath === '') return null;
  if (!socketPath.startsWith('/') && !socketPath.startsWith('@')) return `NOTIFY_SOCKET ${JSON.stringify(socketPath)} is neither a path nor an abstract name`;
  cachedBinding ??= bind();
  const binding = cachedBinding;
  if ('error' in binding) return binding.error;
  const target = sockaddrUn(socketPath);
  if ('error' in target) return target.error;
  const fd = binding.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return `socket() failed (errno ${binding.errno()})`;
  try {
    const message = Buffer.from(state, 'utf8');
    const sent = binding.sendto(fd, message, message.length, 0, target.address, target.length);
    return sent === message.length ? null : `sendto ${socketPath} failed (errno ${binding.errno()})`;
  } finally {
    binding.close(fd);
  }
}
