"""The server's side of prediction: batch prediction jobs over an uploaded zip (`job`, running
tejas_ml.prediction.batch with tejas_ml.prediction.model), the models a user can predict with (`models`),
and prediction streams: Redis (`streams`), the database ledger (`ledger`), what the stream routes change
(`stream_service`) and read (`stream_reads`), and `tejas stream-worker` (`worker`)."""
