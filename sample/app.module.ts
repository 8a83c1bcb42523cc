import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { TerminusModule } from '@nestjs/terminus';
import { TieredCacheHealthIndicator, TieredCacheModule } from '../lib';
import { cacheOptions } from './cache-config';
import { OperationsController } from './operations/operations.controller';
import { ProductsController } from './products/products.controller';
import { ProductsRepository } from './products/products.repository';
import { ProductsService } from './products/products.service';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true }),
    TieredCacheModule.forRootAsync({
      isGlobal: true,
      inject: [ConfigService],
      useFactory: cacheOptions,
    }),
    TerminusModule,
  ],
  controllers: [ProductsController, OperationsController],
  providers: [ProductsRepository, ProductsService, TieredCacheHealthIndicator],
})
export class AppModule {}
