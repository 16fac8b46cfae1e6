import type { Logger, NodeEnv } from '@mycel/core'
import { type DynamicModule, Module } from '@nestjs/common'
import { AdminController } from './admin/admin.controller.js'
import { ApiComponent } from './api/api.component.js'
import { gossipMembership, MEMBERSHIP } from './membership/membership.provider.js'
import { NODE_COMPONENTS, type NodeComponent } from './node-component.js'
import { LOGGER, NODE_CONFIG, NodeRuntime } from './node-runtime.js'
import { RepairComponent } from './repair/repair.component.js'

@Module({})
export class NodeModule {
  static forRoot(config: NodeEnv, logger: Logger): DynamicModule {
    return {
      module: NodeModule,
      controllers: [AdminController],
      providers: [
        { provide: NODE_CONFIG, useValue: config },
        { provide: LOGGER, useValue: logger },
        // Gossip membership (SWIM); the same instance is the first component, so it starts
        // before and stops after the components that depend on the view.
        { provide: MEMBERSHIP, useFactory: () => gossipMembership(config) },
        RepairComponent,
        // The node's components, in start order (stopped in reverse). Each is a provider that
        // implements NodeComponent; list it in `inject` and it runs with the node.
        {
          provide: NODE_COMPONENTS,
          useFactory: (...components: NodeComponent[]) => components,
          inject: [MEMBERSHIP, RepairComponent, ApiComponent],
        },
        ApiComponent,
        NodeRuntime,
      ],
    }
  }
}
