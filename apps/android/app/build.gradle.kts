// The Android app: demo screen + profiling agent service. Not compiled here (no Android SDK on the CI machine).
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

val executorchVersion: String by project
val litertVersion: String by project

android {
    namespace = "dev.ondevice.app"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.ondevice.app"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            // The ExecuTorch and LiteRT AARs ship these ABIs; phones are arm64.
            abiFilters += listOf("arm64-v8a", "x86_64")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            // Debug keystore so `assembleRelease` also installs for profiling (release timings, no debugger).
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    androidResources {
        // Models are read as raw bytes; compressing them would only cost load time.
        noCompress += listOf("pte", "tflite")
    }
}

dependencies {
    implementation(project(":protocol-core"))
    implementation(project(":frontend"))
    implementation("org.pytorch:executorch-android:$executorchVersion")
    implementation("com.google.ai.edge.litert:litert:$litertVersion")
    implementation("androidx.core:core-ktx:1.13.1")
    implementation("androidx.appcompat:appcompat:1.7.0")
}
