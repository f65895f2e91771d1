// HTTP methods as monitors and clients expect them, done once for every route rather than per route:
// - HEAD on every GET route: the GET route's own handlers, so the same status and headers;
//   restify and Node leave the body out. A handler may skip work that only fills the body.
// - OPTIONS on every path: 204 with `Allow` naming the path's methods (restify's 405 names
//   them too, now with HEAD and OPTIONS). `OPTIONS *` names every method the service has
//   (answerServerWideOptions).
// - A method the service does not know at all (PROPFIND, TRACE, …) on an unknown path: 501, as
//   RFC 9110 asks, instead of a 404; on a known path it stays restify's 405.
// - Metric labels: any method outside a fixed set counts as `other`, so a client cannot grow
//   the series (and /metrics) by inventing methods (Node's parser accepts 35).
import type { ServerResponse } from 'node:http';
import type { Next, Request, Response, Server } from 'restify';
import { NotImplementedError, ResourceNotFoundError } from 'restify-errors';
import type { ResponseWriter } from './respond';

/** The methods a metric label may name; every other one is `other`. */
export const LABELLED_METHODS: readonly string[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
export const OTHER_METHOD = 'other';
const LABELLED: ReadonlySet<string> = new Set(LABELLED_METHODS);

/** The method as a metric label: one of LABELLED_METHODS, or `other`. */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && LABELLED.has(method) ? method : OTHER_METHOD;
}

/** What the routes offer: for CONNECT, which restify never sees (socketAnswers.ts). */
export interface RouteMethods {
  /**
   * The methods (sorted, with HEAD and OPTIONS) restify's router finds for an origin-form request
   * target (`/path?query`), as its own 405 names them, or undefined when no route matches: the
   * path read as restify reads it (a WHATWG URL: percent-decoded, dot segments resolved), then
   * matched as its router matches (a trailing slash ignored, parameters). So `CONNECT /health/`
   * gets the 405 that `PUT /health/` gets.
   */
  allowedAt(target: string): readonly string[] | undefined;
  /** Every method some path has, sorted. */
  allMethods(): readonly string[];
  /**
   * The route restify will match for a method and pathname, before its router has run (for an
   * answer given in the `first` handlers), or undefined.
   */
  routeOf(method: string, pathname: string): unknown;
}

interface RouteOptions {
  readonly method: string;
  readonly path: string;
  readonly name?: string;
}
type Handler = (req: Request, res: Response, next: Next) => unknown;
/** restify's Router.mount and unmount (public, documented, but missing from @types/restify). */
interface MountingRouter {
  mount(options: RouteOptions, handlers: Handler[]): { readonly name: string };
  unmount(name: string): unknown;
  /** restify 12's route registry (private): the lookup its own 405 uses; read-only here. */
  readonly _registry?: { lookup(method: string, pathname: string): { readonly route?: unknown } | null | undefined };
}

/** The path restify routes an origin-form target by (its Request.getUrl()), or undefined. */
function routedPathname(target: string): string | undefined {
  if (!target.startsWith('/')) return undefined;
  try {
    // Concatenated, not new URL(target, base): restify does the same, so `//x/y` stays a path.
    return new URL(`http://localhost${target}`).pathname;
  } catch {
    return undefined;
  }
}

/**
 * Hooks restify's router so that every route registered from now on (server.get, .post, …,
 * whoever registers it) brings its HEAD and OPTIONS along. Call before registering routes.
 */
export function supportHeadAndOptions(server: Server, writer: Pick<ResponseWriter, 'sendEmpty'>): RouteMethods {
  const router = server.router as unknown as MountingRouter;
  const registry = router._registry;
  // Fail at startup, in the tests, if a restify upgrade moves it, rather than answer CONNECT wrongly.
  if (typeof registry?.lookup !== 'function') throw new Error('restify\'s router has no _registry.lookup: src/api/http/methods.ts needs updating');
  const mount = router.mount.bind(router);
  const methodsByPath = new Map<string, Set<string>>();
  /** `METHOD path` → route name, for the HEAD and OPTIONS routes added here. */
  const added = new Map<string, string>();

  /** The methods of a route's own path (its template), for its OPTIONS. */
  const methodsOf = (path: string): readonly string[] => [...(methodsByPath.get(path) ?? [])].sort();

  const addRoute = (path: string, method: string, options: RouteOptions, handlers: Handler[]): void => {
    const key = `${method} ${path}`;
    if (methodsByPath.get(path)?.has(method)) return;
    const { name: _ignored, ...rest } = options;
    added.set(key, mount({ ...rest, method }, handlers).name);
    methodsByPath.get(path)?.add(method);
  };

  const answerOptions = (path: string): Handler => (_req, res, next) => {
    writer.sendEmpty(res, 204, { Allow: methodsOf(path).join(', ') });
    next();
  };

  router.mount = (options, handlers) => {
    const path = String(options.path);
    const key = `${options.method} ${path}`;
    // A HEAD or OPTIONS route of its own replaces the one added here.
    const replaced = added.get(key);
    if (replaced !== undefined) {
      router.unmount(replaced);
      added.delete(key);
      methodsByPath.get(path)?.delete(options.method);
    }
    const route = mount(options, handlers);
    let methods = methodsByPath.get(path);
    if (methods === undefined) methodsByPath.set(path, (methods = new Set()));
    methods.add(options.method);
    if (options.method === 'GET') addRoute(path, 'HEAD', options, handlers);
    addRoute(path, 'OPTIONS', options, [answerOptions(path)]);
    return route;
  };

  const allMethods = (): readonly string[] => {
    const every = new Set<string>();
    for (const methods of methodsByPath.values()) for (const method of methods) every.add(method);
    return [...every].sort();
  };

  const allowedAt = (target: string): readonly string[] | undefined => {
    const pathname = routedPathname(target);
    if (pathname === undefined) return undefined;
    // As restify's defaultRoute finds a 405's methods: each method the service has, looked up.
    const methods = allMethods().filter((method) => registry.lookup(method, pathname));
    return methods.length === 0 ? undefined : methods;
  };

  const routeOf = (method: string, pathname: string): unknown => registry.lookup(method, pathname)?.route;

  return { allowedAt, allMethods, routeOf };
}

/**
 * `OPTIONS *` asks about the server as a whole; restify would answer it itself, outside the
 * envelope, the metrics and the request log. Register after the `first` handlers that note the
 * arrival and assign the request id, so it is counted and logged like any answer.
 */
export function answerServerWideOptions(server: Server, routes: RouteMethods, writer: Pick<ResponseWriter, 'sendEmptyBeforeRouting'>): void {
  server.first((req, res) => {
    if (req.method !== 'OPTIONS' || req.url !== '*') return true;
    writer.sendEmptyBeforeRouting(res as ServerResponse, 204, { Allow: routes.allMethods().join(', ') });
    return false;
  });
}

/**
 * For the error handler: restify's 404 for a request whose method the service does not know at
 * all becomes a 501 (the path is not the problem). Any other error passes unchanged.
 */
export function refineRoutingError(req: Request, error: unknown): unknown {
  if (!(error instanceof ResourceNotFoundError) || LABELLED.has(req.method ?? '')) return error;
  // Only the router's 404 (no route matched); a route's own 404 says something about the resource.
  // (@types/restify types getRoute() as always a Route; it is undefined until a route matched.)
  const route: unknown = req.getRoute();
  if (route !== undefined && route !== null) return error;
  return new NotImplementedError(`${req.method ?? '?'} is not supported by this service`);
}
