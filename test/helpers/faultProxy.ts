// A TCP proxy between the service and MariaDB that can refuse, black-hole or cut connections:
// transient database failures on demand, without touching the database server.
import net from 'node:net';

export type ProxyMode = 'pass' | 'refuse' | 'blackhole';

export interface FaultProxy {
  readonly port: number;
  mode: ProxyMode;
  /** Connections accepted since start (including refused ones). */
  readonly accepted: number;
  /** Refuse the next n connections, then pass again. */
  refuseNext(n: number): void;
  /** Cuts every open connection (the client sees it lost). */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  let refuseBudget = 0;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (proxy.mode === 'refuse' || refuseBudget > 0) {
      if (refuseBudget > 0) refuseBudget--;
      client.resetAndDestroy();
      return;
    }
    if (proxy.mode === 'blackhole') return; // accepted, never answered
    const upstream = net.connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  const proxy: FaultProxy = {
    port: address.port,
    mode: 'pass',
    get accepted() {
      return accepted;
    },
    refuseNext(n) {
      refuseBudget = n;
    },
    dropAll() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
