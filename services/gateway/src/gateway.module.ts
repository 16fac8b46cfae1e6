import type { GatewayEnv, Logger } from '@mycel/core'
import { type DynamicModule, Module } from '@nestjs/common'
import { APP_FILTER } from '@nestjs/core'
import { GATEWAY_CONFIG, GatewayRuntime, LOGGER } from './gateway-runtime.js'
import { AdminController } from './http/admin.controller.js'
import { GatewayErrorFilter } from './http/error.filter.js'
import { IpfsController } from './http/ipfs.controller.js'
import { KuboDagController } from './http/kubo-dag.controller.js'
import { KuboPinController } from './http/kubo-pin.controller.js'
import { KuboRpcController } from './http/kubo-rpc.controller.js'
import { OpenApiController } from './http/openapi.controller.js'
import { UploadController } from './http/upload.controller.js'
import { NodeApi } from './pins/node-api.js'

@Module({})
export class GatewayModule {
  static forRoot(config: GatewayEnv, logger: Logger): DynamicModule {
    return {
      module: GatewayModule,
      controllers: [
        IpfsController,
        UploadController,
        KuboRpcController,
        KuboDagController,
        KuboPinController,
        AdminController,
        OpenApiController,
      ],
      providers: [
        { provide: GATEWAY_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        GatewayRuntime,
        NodeApi,
        { provide: APP_FILTER, useClass: GatewayErrorFilter },
      ],
    }
  }
}
