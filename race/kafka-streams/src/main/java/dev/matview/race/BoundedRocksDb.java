package dev.matview.race;

import java.util.Map;
import org.apache.kafka.streams.state.RocksDBConfigSetter;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.Cache;
import org.rocksdb.CompressionType;
import org.rocksdb.LRUCache;
import org.rocksdb.Options;
import org.rocksdb.WriteBufferManager;

/**
 * RocksDB bounded as Kafka Streams' memory-management guide shows: one block
 * cache for every store instance of the process, with the memtables counted
 * against it (WriteBufferManager) and index and filter blocks held in it at
 * high priority, so memory stays bounded however many partitions a thread
 * owns; LZ4 for the SST files.
 */
public final class BoundedRocksDb implements RocksDBConfigSetter {
    static final long TOTAL_OFF_HEAP = 256L << 20;
    static final long TOTAL_MEMTABLE = 64L << 20;
    static final double INDEX_FILTER_RATIO = 0.1;

    private static final Cache CACHE = new LRUCache(TOTAL_OFF_HEAP, -1, false, INDEX_FILTER_RATIO);
    private static final WriteBufferManager WRITE_BUFFERS = new WriteBufferManager(TOTAL_MEMTABLE, CACHE);

    @Override
    public void setConfig(String storeName, Options options, Map<String, Object> configs) {
        BlockBasedTableConfig table = (BlockBasedTableConfig) options.tableFormatConfig();
        table.setBlockCache(CACHE);
        table.setCacheIndexAndFilterBlocks(true);
        table.setCacheIndexAndFilterBlocksWithHighPriority(true);
        table.setPinTopLevelIndexAndFilter(true);
        options.setWriteBufferManager(WRITE_BUFFERS);
        options.setTableFormatConfig(table);
        options.setMaxWriteBufferNumber(3);
        options.setWriteBufferSize(16L << 20);
        options.setCompressionType(CompressionType.LZ4_COMPRESSION);
    }

    @Override
    public void close(String storeName, Options options) {
        // The cache and the write buffer manager are shared: never closed per store.
    }
}
