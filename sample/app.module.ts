import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { TieredCacheModule } from '../lib';
import { cacheOptions } from './cache-config';
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
  ],
  controllers: [ProductsController],
  providers: [ProductsRepository, ProductsService],
})
export class AppModule {}
