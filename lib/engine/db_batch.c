/* Write batches: operations gathered by the caller and appended to the log
 * as one atomic group by strata_db_write. */
#include <stdlib.h>
#include <string.h>

#include "db_impl.h"

strata_batch_t *strata_batch_new(void)
{
    return calloc(1, sizeof(strata_batch_t));
}

void strata_batch_destroy(strata_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ops);
    free((*self_p)->bytes);
    free(*self_p);
    *self_p = NULL;
}

static int batch_reserve(strata_batch_t *self, size_t more_bytes)
{
    if (self->n_ops == self->cap_ops) {
        size_t cap = self->cap_ops ? self->cap_ops * 2 : 8;
        batch_op_t *grown = realloc(self->ops, cap * sizeof *grown);
        if (!grown)
            return STRATA_ENOMEM;
        self->ops = grown;
        self->cap_ops = cap;
    }
    if (self->n_bytes + more_bytes > self->cap_bytes) {
        size_t cap = self->cap_bytes ? self->cap_bytes : 256;
        while (cap < self->n_bytes + more_bytes)
            cap *= 2;
        uint8_t *grown = realloc(self->bytes, cap);
        if (!grown)
            return STRATA_ENOMEM;
        self->bytes = grown;
        self->cap_bytes = cap;
    }
    return 0;
}

static int batch_add(strata_batch_t *self, uint8_t type, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t value_len)
{
    size_t topic_len = topic ? strlen(topic) : 0;
    if (topic_len > UINT16_MAX || key_len > UINT32_MAX || value_len > UINT32_MAX)
        return STRATA_ETOOBIG;
    int rc = batch_reserve(self, topic_len + key_len + value_len);
    if (rc)
        return rc;
    batch_op_t *op = &self->ops[self->n_ops++];
    *op = (batch_op_t){
        .type = type,
        .topic_off = self->n_bytes,
        .topic_len = (uint16_t)topic_len,
        .key_off = self->n_bytes + topic_len,
        .key_len = (uint32_t)key_len,
        .value_off = self->n_bytes + topic_len + key_len,
        .value_len = (uint32_t)value_len,
    };
    if (topic_len)
        memcpy(self->bytes + op->topic_off, topic, topic_len);
    if (key_len)
        memcpy(self->bytes + op->key_off, key, key_len);
    if (value_len)
        memcpy(self->bytes + op->value_off, value, value_len);
    self->n_bytes += topic_len + key_len + value_len;
    return 0;
}

int strata_batch_put(strata_batch_t *self, const void *key, size_t key_len, const void *value,
                     size_t value_len)
{
    return batch_add(self, STRATA_VALUE_PUT, NULL, key, key_len, value, value_len);
}

int strata_batch_put_topic(strata_batch_t *self, const char *topic, const void *key, size_t key_len,
                           const void *value, size_t value_len)
{
    return batch_add(self, STRATA_VALUE_PUT, topic, key, key_len, value, value_len);
}

int strata_batch_delete(strata_batch_t *self, const void *key, size_t key_len)
{
    return batch_add(self, STRATA_VALUE_DELETE, NULL, key, key_len, NULL, 0);
}

size_t strata_batch_count(const strata_batch_t *self)
{
    return self->n_ops;
}

void strata_batch_truncate(strata_batch_t *self, size_t count)
{
    if (count >= self->n_ops)
        return;
    self->n_bytes = self->ops[count].topic_off;
    self->n_ops = count;
}

void strata_batch_clear(strata_batch_t *self)
{
    self->n_ops = 0;
    self->n_bytes = 0;
}
