// What restify 12 has and @types/restify 8 predates.
import 'restify';

declare module 'restify' {
  interface Server {
    /** Synchronous handlers that run before anything else; return false to stop the request. */
    first(...handlers: Array<(req: Request, res: Response) => boolean | undefined | void>): Server;
  }
  interface Request {
    /** Sets the request id (once) or reads it. */
    id(reqId?: string): string;
  }
}
