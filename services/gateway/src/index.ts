export { parseRange } from './http/range.js'
export { runGateway } from './main.js'
