import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Controller, Get, Res } from '@nestjs/common'
import type { Response } from 'express'
import { parse } from 'yaml'

/** The checked-in OpenAPI description of this API (services/gateway/openapi.yaml). */
export const OPENAPI_FILE = fileURLToPath(new URL('../../openapi.yaml', import.meta.url))

/** The description as served: the file's text and its JSON form, read once. */
export function loadOpenApi(): { yaml: string; json: string; document: OpenApiDocument } {
  const yaml = readFileSync(OPENAPI_FILE, 'utf8')
  const document = parse(yaml) as OpenApiDocument
  return { yaml, json: JSON.stringify(document), document }
}

export interface OpenApiDocument {
  openapi: string
  paths: Record<string, Record<string, { responses?: Record<string, unknown> } | unknown>>
}

/** Serves the API description, so clients and tools (schemathesis, code generators) can read it. */
@Controller('mycel/v1')
export class OpenApiController {
  private readonly description = loadOpenApi()

  @Get('openapi.yaml')
  yaml(@Res() res: Response): void {
    res.setHeader('Content-Type', 'application/yaml; charset=utf-8')
    res.send(this.description.yaml)
  }

  @Get('openapi.json')
  json(@Res() res: Response): void {
    res.setHeader('Content-Type', 'application/json; charset=utf-8')
    res.send(this.description.json)
  }
}
