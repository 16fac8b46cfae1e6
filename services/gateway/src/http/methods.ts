import type { NextFunction, Request, Response } from 'express'
import { errorBody } from './error-response.js'
import type { OpenApiDocument } from './openapi.controller.js'

const HTTP_METHODS = ['get', 'head', 'post', 'put', 'delete', 'options', 'patch', 'trace'] as const

/**
 * 405 with `Allow` for a method the API description does not list on a path it documents (the
 * router alone would answer 404, as if the resource did not exist). HEAD goes wherever GET does.
 */
export function methodNotAllowed(document: OpenApiDocument) {
  const routes = Object.entries(document.paths).map(([template, item]) => {
    const methods = HTTP_METHODS.filter((m) => (item as Record<string, unknown>)[m] !== undefined).map((m) =>
      m.toUpperCase(),
    )
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD')
    // A template's last parameter may span several segments (/ipfs/{cid}/{path}).
    const pattern = template
      .replace(/[.]/g, '\\.')
      .replace(/\{\w+\}$/, '.+')
      .replace(/\{\w+\}/g, '[^/]+')
    return { match: new RegExp(`^${pattern}/*$`, 'i'), methods }
  })
  return (req: Request, res: Response, next: NextFunction): void => {
    const route = routes.find((r) => r.match.test(req.path))
    if (route === undefined || route.methods.includes(req.method)) {
      next()
      return
    }
    const allow = route.methods.join(', ')
    const { type, body } = errorBody(
      req.path,
      405,
      `method ${req.method} not allowed on ${req.path}; use ${allow}`,
    )
    res.status(405).set({ Allow: allow, 'Content-Type': type }).send(body)
  }
}
