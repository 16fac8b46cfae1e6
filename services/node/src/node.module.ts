import type { Logger, NodeEnv } from '@mycel/core'
import { type DynamicModule, Module } from '@nestjs/common'
import { AdminController } from './admin/admin.controller.js'
import { LOGGER, NODE_CONFIG, NodeRuntime } from './node-runtime.js'

@Module({})
export class NodeModule {
  static forRoot(config: NodeEnv, logger: Logger): DynamicModule {
    return {
      module: NodeModule,
      controllers: [AdminController],
      providers: [
        { provide: NODE_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        NodeRuntime,
      ],
    }
  }
}
