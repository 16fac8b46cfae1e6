export { GatewayModule } from './gateway.module.js'
export { parseRange } from './http/range.js'
export { runGateway } from './main.js'
