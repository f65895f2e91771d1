// A webhook receiver on loopback for alerts sent by other processes (nock only sees its own).
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type WebhookBehaviour = 'accept' | 'fail' | 'hang' | 'refuse';

export interface WebhookReceiver {
  readonly url: string;
  readonly received: Array<Record<string, unknown>>;
  behaviour: WebhookBehaviour;
  close(): Promise<void>;
}

export async function startWebhookReceiver(behaviour: WebhookBehaviour = 'accept'): Promise<WebhookReceiver> {
  const sockets = new Set<Socket>();
  const received: Array<Record<string, unknown>> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      try {
        received.push(JSON.parse(body) as Record<string, unknown>);
      } catch {
        received.push({ unparsable: body });
      }
      if (receiver.behaviour === 'hang') return; // never answer
      if (receiver.behaviour === 'fail') {
        res.writeHead(500).end('boom');
        return;
      }
      res.writeHead(204).end();
    });
  });
  server.on('connection', (socket) => {
    if (receiver.behaviour === 'refuse') {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}/alerts`,
    received,
    behaviour,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return receiver;
}
