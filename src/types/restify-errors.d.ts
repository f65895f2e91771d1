// The part of restify-errors 8 this service uses (the package ships no types).
declare module 'restify-errors' {
  interface ErrorOptions {
    message?: string;
    cause?: Error;
    info?: Record<string, unknown>;
  }

  export class HttpError extends Error {
    constructor(message?: string);
    constructor(options: ErrorOptions, message?: string);
    statusCode: number;
    code: string;
    restCode?: string;
    body: { code?: string; message?: string };
  }

  export class BadRequestError extends HttpError {}
  export class UnauthorizedError extends HttpError {}
  export class ForbiddenError extends HttpError {}
  export class NotFoundError extends HttpError {}
  export class MethodNotAllowedError extends HttpError {}
  export class ConflictError extends HttpError {}
  export class PayloadTooLargeError extends HttpError {}
  export class UnsupportedMediaTypeError extends HttpError {}
  export class UnprocessableEntityError extends HttpError {}
  export class TooManyRequestsError extends HttpError {}
  export class InternalServerError extends HttpError {}
  export class ServiceUnavailableError extends HttpError {}
  export class RequestTimeoutError extends HttpError {}
  export class InvalidCredentialsError extends HttpError {}
  export class InvalidContentError extends HttpError {}
  export class NotImplementedError extends HttpError {}
  /** restify's 404 for an unknown path (`%s does not exist`, printf-style like the router's own). */
  export class ResourceNotFoundError extends HttpError {
    constructor(format?: string, ...args: unknown[]);
  }

  export function makeConstructor(name: string, defaults?: { statusCode?: number; restCode?: string }): typeof HttpError;
}
