"""Character-level LSTM seq2seq with return_state / initial_state (keras.io lstm_seq2seq)."""
import numpy as np
import fastdl as keras

num_encoder_tokens, num_decoder_tokens, latent_dim, n = 12, 14, 32, 64
enc_in = np.eye(num_encoder_tokens, dtype="float32")[np.random.randint(num_encoder_tokens, size=(n, 7))]
dec_in = np.eye(num_decoder_tokens, dtype="float32")[np.random.randint(num_decoder_tokens, size=(n, 9))]
dec_target = np.roll(dec_in, -1, axis=1)

encoder_inputs = keras.Input(shape=(None, num_encoder_tokens))
encoder = keras.layers.LSTM(latent_dim, return_state=True)
encoder_outputs, state_h, state_c = encoder(encoder_inputs)
encoder_states = [state_h, state_c]
decoder_inputs = keras.Input(shape=(None, num_decoder_tokens))
decoder_lstm = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
decoder_dense = keras.layers.Dense(num_decoder_tokens, activation="softmax")
decoder_outputs = decoder_dense(decoder_outputs)
model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
model.fit([enc_in, dec_in], dec_target, batch_size=16, epochs=2, validation_split=0.2, verbose=0)

# inference models that reuse the trained layers
encoder_model = keras.Model(encoder_inputs, encoder_states)
decoder_state_input_h = keras.Input(shape=(latent_dim,))
decoder_state_input_c = keras.Input(shape=(latent_dim,))
decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(decoder_inputs, initial_state=decoder_states_inputs)
decoder_outputs = decoder_dense(decoder_outputs)
decoder_model = keras.Model([decoder_inputs] + decoder_states_inputs,
                            [decoder_outputs, state_h_dec, state_c_dec])
states_value = encoder_model.predict(enc_in[:1], verbose=0)
target_seq = np.zeros((1, 1, num_decoder_tokens), dtype="float32"); target_seq[0, 0, 0] = 1.0
decoded = []
for _ in range(5):
    output_tokens, h, c = decoder_model.predict([target_seq] + states_value, verbose=0)
    idx = int(np.argmax(output_tokens[0, -1, :])); decoded.append(idx)
    target_seq = np.zeros((1, 1, num_decoder_tokens), dtype="float32"); target_seq[0, 0, idx] = 1.0
    states_value = [h, c]
print("decoded", decoded)
